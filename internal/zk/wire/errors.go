package wire

import (
	"errors"
	"fmt"
)

// Error is an error code of ZooKeeper's protocol (KeeperException.Code).
// Compare with errors.Is(err, wire.ErrNoNode).
type Error int32

// The codes a client meets.
const (
	ErrSystem                   Error = -1
	ErrRuntimeInconsistency     Error = -2
	ErrDataInconsistency        Error = -3
	ErrConnectionLoss           Error = -4
	ErrMarshalling              Error = -5
	ErrUnimplemented            Error = -6
	ErrOperationTimeout         Error = -7
	ErrBadArguments             Error = -8
	ErrUnknownSession           Error = -12
	ErrNewConfigNoQuorum        Error = -13
	ErrReconfigInProgress       Error = -14
	ErrAPI                      Error = -100
	ErrNoNode                   Error = -101
	ErrNoAuth                   Error = -102
	ErrBadVersion               Error = -103
	ErrNoChildrenForEphemerals  Error = -108
	ErrNodeExists               Error = -110
	ErrNotEmpty                 Error = -111
	ErrSessionExpired           Error = -112
	ErrInvalidCallback          Error = -113
	ErrInvalidACL               Error = -114
	ErrAuthFailed               Error = -115
	ErrSessionMoved             Error = -118
	ErrNotReadOnly              Error = -119
	ErrEphemeralOnLocalSession  Error = -120
	ErrNoWatcher                Error = -121
	ErrRequestTimeout           Error = -122
	ErrReconfigDisabled         Error = -123
	ErrSessionClosedRequireSASL Error = -124
	ErrQuotaExceeded            Error = -125
	ErrThrottled                Error = -127
)

var errorNames = map[Error]string{
	ErrSystem:                   "system error",
	ErrRuntimeInconsistency:     "runtime inconsistency (an earlier op of the multi failed)",
	ErrDataInconsistency:        "data inconsistency",
	ErrConnectionLoss:           "connection loss",
	ErrMarshalling:              "marshalling error",
	ErrUnimplemented:            "operation not implemented by the server",
	ErrOperationTimeout:         "operation timeout",
	ErrBadArguments:             "bad arguments",
	ErrUnknownSession:           "unknown session",
	ErrNewConfigNoQuorum:        "new config has no quorum",
	ErrReconfigInProgress:       "reconfig in progress",
	ErrAPI:                      "API error",
	ErrNoNode:                   "node does not exist",
	ErrNoAuth:                   "not authenticated",
	ErrBadVersion:               "version conflict",
	ErrNoChildrenForEphemerals:  "ephemeral nodes may not have children",
	ErrNodeExists:               "node already exists",
	ErrNotEmpty:                 "node has children",
	ErrSessionExpired:           "session expired",
	ErrInvalidCallback:          "invalid callback",
	ErrInvalidACL:               "invalid ACL",
	ErrAuthFailed:               "authentication failed",
	ErrSessionMoved:             "session moved to another server",
	ErrNotReadOnly:              "server is read-only",
	ErrEphemeralOnLocalSession:  "ephemeral node on a local session",
	ErrNoWatcher:                "no such watcher",
	ErrRequestTimeout:           "request timeout",
	ErrReconfigDisabled:         "reconfig disabled",
	ErrSessionClosedRequireSASL: "session closed: the server requires SASL authentication",
	ErrQuotaExceeded:            "quota exceeded",
	ErrThrottled:                "request throttled",
}

func (e Error) Error() string {
	if s, ok := errorNames[e]; ok {
		return "zookeeper: " + s
	}
	return fmt.Sprintf("zookeeper: error code %d", int32(e))
}

// codeErr turns a reply's code into an error (nil for 0).
func codeErr(code int32) error {
	if code == 0 {
		return nil
	}
	return Error(code)
}

// Errors of the connection itself. Every request in flight when the
// connection ends gets ErrConnClosed joined with the cause.
var (
	// ErrConnClosed: the connection is gone (closed, or failed: see the
	// joined cause).
	ErrConnClosed = errors.New("zookeeper connection closed")
	// ErrFrameTooLarge: a frame's length is over the maximum buffer
	// (jute.maxbuffer) or negative. A reply over it fails its request
	// alone (the connection stays); a request that would be too large is
	// refused before it is sent.
	ErrFrameTooLarge = errors.New("zookeeper frame larger than jute.maxbuffer")
	// ErrProtocol: the server sent something that does not parse or does not
	// fit (an unknown xid, a truncated record). It ends the connection.
	ErrProtocol = errors.New("zookeeper protocol error")
	// ErrSessionExpiredAtConnect: the handshake found the session gone.
	ErrSessionExpiredAtConnect = fmt.Errorf("connect: %w", ErrSessionExpired)
)
