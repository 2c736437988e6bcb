package tracker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
)

// Reason is the bounded `reason` label of btda_tracker_request_failures_total.
type Reason string

// Failure reasons. Every request failure maps to exactly one of these.
const (
	ReasonTimeout      Reason = "timeout"        // no (valid) answer in time
	ReasonConnection   Reason = "connection"     // DNS, dial, reset, socket errors
	ReasonHTTPStatus   Reason = "http_status"    // HTTP status other than 200
	ReasonFailure      Reason = "failure_reason" // tracker said no: `failure reason` / UDP error action
	ReasonBadResponse  Reason = "bad_response"   // undecodable body or packet
	ReasonBodyTooLarge Reason = "body_too_large" // HTTP body over Config.MaxBodyBytes
	ReasonRedirects    Reason = "redirects"      // more than Config.MaxRedirects redirects
	ReasonProtocol     Reason = "protocol"       // unsupported URL scheme, malformed URL, no scrape URL
	ReasonCanceled     Reason = "canceled"       // our own shutdown or removal cut the request short
	ReasonUnclassified Reason = "other"          // anything else (should stay at zero)
)

// Reasons lists every Reason, for pre-creating metric series.
var Reasons = []Reason{
	ReasonTimeout, ReasonConnection, ReasonHTTPStatus, ReasonFailure, ReasonBadResponse,
	ReasonBodyTooLarge, ReasonRedirects, ReasonProtocol, ReasonCanceled, ReasonUnclassified,
}

// Error is a failed tracker request. Its message names the tracker (redacted URL), the
// request kind and what was wrong.
type Error struct {
	Reason Reason
	Kind   string // "announce" or "scrape"
	URL    string // redacted
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("tracker %s %s: %s: %v", e.Kind, e.URL, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the failure reason of err: its *Error's Reason, or a classification of
// plain network errors.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var te *Error
	if errors.As(err, &te) {
		return te.Reason
	}
	return classify(err)
}

// classify maps errors from the network stack to a reason.
func classify(err error) Reason {
	var re *reasonError
	switch {
	case errors.As(err, &re):
		return re.reason
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout
	}
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) {
		return ReasonConnection
	}
	return ReasonUnclassified
}

// reasonError tags an inner error with its reason so that wrapping code can keep it.
type reasonError struct {
	reason Reason
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func withReason(r Reason, format string, args ...any) error {
	return &reasonError{reason: r, err: fmt.Errorf(format, args...)}
}
