package configstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/zkprom/zkprom/internal/zk"
)

// A write that fails with an error zk.OutcomeUnknown accepts may have
// been applied all the same. Guessing either way loses data: taken for
// "not applied", a push deletes its revision though the current pointer
// may name it now; taken for "applied", a half-written revision is left.
// So settle looks, once the connection is back, at what the write would
// have changed, and goes on from what it finds.

const (
	writeTries = 3 // attempts of one write whose answers were lost
	// settleTimeout bounds finding out, which goes on after the caller's
	// context ended: the answer decides whether a revision may go.
	settleTimeout = 30 * time.Second
	// findNewest is how many of the newest revisions a push reads to find
	// the one its lost create made.
	findNewest = 32
)

// LostWriteError is a write whose answer was lost every time it was tried
// (the connection dropped, the session expired, or the time ran out):
// either it did not land (Unknown false), or nobody could read whether it
// did.
type LostWriteError struct {
	What    string // what was being written, for people
	Unknown bool
	Err     error // the write's last error
	Check   error // why whether it landed could not be read (Unknown)
}

func (e *LostWriteError) Error() string {
	if e.Unknown && e.Check != nil {
		return fmt.Sprintf("%s while %s, and whether it landed could not be read back (%v): %v", cause(e.Err), e.What, e.Check, e.Err)
	}
	if e.Unknown {
		return fmt.Sprintf("%s while %s; whether it landed is unknown: %v", cause(e.Err), e.What, e.Err)
	}
	return fmt.Sprintf("%s while %s; it did not land: %v", cause(e.Err), e.What, e.Err)
}

func (e *LostWriteError) Unwrap() error { return e.Err }

// unknown says whether err is a write that may or may not have landed.
func unknown(err error) bool {
	var lost *LostWriteError
	return errors.As(err, &lost) && lost.Unknown
}

func cause(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "the time ran out"
	case errors.Is(err, context.Canceled):
		return "the operation was cancelled"
	case errors.Is(err, zk.ErrSessionExpired):
		return "the ZooKeeper session expired"
	case errors.Is(err, zk.ErrClosing):
		return "the ZooKeeper client was closed"
	}
	return "the connection to ZooKeeper dropped"
}

// settle runs write. When its answer is lost, landed (nil for a write
// that may simply run again) reads whether it happened: settle returns nil
// when it did, and tries again when it did not, writeTries times in all.
// Other errors are write's own.
func (s *Store) settle(ctx context.Context, what string, write func(context.Context) error, landed func(context.Context) (bool, error)) error {
	for try := 1; ; try++ {
		err := write(ctx)
		if err == nil || !zk.OutcomeUnknown(err) {
			return err
		}
		s.logger.Warn("the answer to a write was lost; reading whether it landed", "write", what, "try", try, "err", err)
		check := landed
		if check == nil { // only wait for the session to be back
			check = func(context.Context) (bool, error) { return false, nil }
		}
		ok, cerr := s.look(ctx, check)
		if cerr != nil {
			return &LostWriteError{What: what, Unknown: true, Err: err, Check: cerr}
		}
		if ok {
			s.logger.Info("the write had landed", "write", what)
			return nil
		}
		if try == writeTries || ctx.Err() != nil {
			return &LostWriteError{What: what, Unknown: landed == nil, Err: err}
		}
	}
}

// look runs landed once the session is back, after a sync (the server may
// be behind the leader, where a write sent on the lost connection went).
// A request made after a connection loss waits for the next connection,
// so only an expired session is waited out here: the client hands out the
// expired one until it has made the next.
func (s *Store) look(ctx context.Context, landed func(context.Context) (bool, error)) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	var err error
	for try := 1; try <= writeTries; try++ {
		if err = s.c.Sync(ctx, s.base); err == nil {
			var ok bool
			if ok, err = landed(ctx); err == nil {
				return ok, nil
			}
		}
		if !errors.Is(err, zk.ErrSessionExpired) {
			break
		}
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
	return false, err
}
