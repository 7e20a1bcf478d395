package wire

import (
	"fmt"
	"sync"
)

// EventType is the type of a watch notification.
type EventType int32

// Event types (Watcher.Event.EventType).
const (
	EventNone                   EventType = -1
	EventNodeCreated            EventType = 1
	EventNodeDeleted            EventType = 2
	EventNodeDataChanged        EventType = 3
	EventNodeChildrenChanged    EventType = 4
	EventDataWatchRemoved       EventType = 5
	EventChildWatchRemoved      EventType = 6
	EventPersistentWatchRemoved EventType = 7
)

var eventNames = map[EventType]string{
	EventNone: "none", EventNodeCreated: "created", EventNodeDeleted: "deleted",
	EventNodeDataChanged: "data_changed", EventNodeChildrenChanged: "children_changed",
	EventDataWatchRemoved: "data_watch_removed", EventChildWatchRemoved: "child_watch_removed",
	EventPersistentWatchRemoved: "persistent_watch_removed",
}

func (t EventType) String() string {
	if s, ok := eventNames[t]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", int32(t))
}

// State is the session state a notification carries.
type State int32

// Session states (Watcher.Event.KeeperState).
const (
	StateDisconnected      State = 0
	StateSyncConnected     State = 3
	StateAuthFailed        State = 4
	StateConnectedReadOnly State = 5
	StateSASLAuthenticated State = 6
	StateExpired           State = -112
	StateClosed            State = 7
)

var stateNames = map[State]string{
	StateDisconnected: "disconnected", StateSyncConnected: "connected", StateAuthFailed: "auth_failed",
	StateConnectedReadOnly: "connected_read_only", StateSASLAuthenticated: "sasl_authenticated",
	StateExpired: "expired", StateClosed: "closed",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Event is a watch notification, or (Type EventNone) the end of the
// connection.
type Event struct {
	Type  EventType
	State State
	Path  string
	// Zxid is the notification's zxid when the server sends one (3.9+; -1
	// or 0 from older servers).
	Zxid int64
	// Err is why the connection ended (the last event only).
	Err error
}

// eventQueue hands events to a channel in order without ever blocking the
// reader: what the consumer has not taken yet waits in a slice.
type eventQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	q      []Event
	closed bool
	out    chan Event
	start  sync.Once
}

func newEventQueue() *eventQueue {
	q := &eventQueue{out: make(chan Event)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// channel starts the delivery goroutine on first use: a connection whose
// events nobody asks for leaves no goroutine behind.
func (q *eventQueue) channel() <-chan Event {
	q.start.Do(func() { go q.run() })
	return q.out
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	if !q.closed {
		q.q = append(q.q, ev)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

// pushNotified tells book of ev and queues ev and the event book adds,
// unless the queue is closed: book must not count an event a connection
// that ended drops (a one-shot watch it fired would not be set again).
func (q *eventQueue) pushNotified(ev Event, book watchBook) {
	q.mu.Lock()
	if !q.closed {
		extra, ok := book.notified(ev)
		q.q = append(q.q, ev)
		if ok {
			q.q = append(q.q, extra)
		}
		q.cond.Signal()
	}
	q.mu.Unlock()
}

// close queues the last event; the channel closes once all are delivered.
func (q *eventQueue) close(last Event) {
	q.mu.Lock()
	if !q.closed {
		q.q = append(q.q, last)
		q.closed = true
		q.cond.Signal()
	}
	q.mu.Unlock()
}

func (q *eventQueue) run() {
	for {
		q.mu.Lock()
		for len(q.q) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.q) == 0 {
			q.mu.Unlock()
			close(q.out)
			return
		}
		batch := q.q
		q.q = nil
		q.mu.Unlock()
		for _, ev := range batch {
			q.out <- ev
		}
	}
}
