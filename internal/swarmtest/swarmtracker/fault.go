package swarmtracker

import "fmt"

// FaultMode is a misbehaviour the tracker switches into at run time, so that tests can drive a
// tracker client through every failure a real tracker shows. A mode that has no meaning for a
// protocol leaves that protocol answering normally (see the table in doc.go).
type FaultMode int

const (
	// FaultNone answers every request as the specs say.
	FaultNone FaultMode = iota
	// FaultFailureReason answers HTTP with a bencoded {"failure reason": ...} (status 200) and
	// UDP with an error packet (action 3).
	FaultFailureReason
	// FaultHTTP500 answers HTTP with status 500 and a plain-text body.
	FaultHTTP500
	// FaultGarbage answers HTTP with a 200 body that is not bencode, and UDP with random bytes
	// (like FaultForeignPacket).
	FaultGarbage
	// FaultNonDict answers HTTP with valid bencode that is not a dictionary (a list).
	FaultNonDict
	// FaultHugeBody answers HTTP with a valid but huge bencoded dictionary (Config.HugeBodySize,
	// 8 MiB by default): a client must cap what it reads.
	FaultHugeBody
	// FaultSlow holds the reply until the client gives up (HTTP: the request context ends),
	// the tracker closes, or Config.SlowHold passes; then it answers normally. UDP replies are
	// sent after Config.SlowHold (unless the tracker closes first).
	FaultSlow
	// FaultRedirectLoop answers HTTP with 302 to the very URL requested, forever.
	FaultRedirectLoop
	// FaultNoReply sends nothing over UDP; HTTP connections are closed without a response.
	FaultNoReply
	// FaultTruncated sends the normal reply less its last 3 bytes (UDP), or the first half of the
	// normal body under the full Content-Length (HTTP: the client sees an unexpected EOF).
	FaultTruncated
	// FaultWrongTransaction sends the normal UDP reply with a transaction ID that was not asked.
	FaultWrongTransaction
	// FaultForeignPacket sends a UDP packet of random bytes instead of the reply.
	FaultForeignPacket

	numFaultModes
)

var faultNames = [...]string{
	FaultNone:             "none",
	FaultFailureReason:    "failure_reason",
	FaultHTTP500:          "http_500",
	FaultGarbage:          "garbage",
	FaultNonDict:          "non_dict",
	FaultHugeBody:         "huge_body",
	FaultSlow:             "slow",
	FaultRedirectLoop:     "redirect_loop",
	FaultNoReply:          "no_reply",
	FaultTruncated:        "truncated",
	FaultWrongTransaction: "wrong_transaction",
	FaultForeignPacket:    "foreign_packet",
}

// String returns the snake_case name of the mode.
func (m FaultMode) String() string {
	if m >= 0 && m < numFaultModes {
		return faultNames[m]
	}
	return fmt.Sprintf("FaultMode(%d)", int(m))
}

// FaultModes lists every mode, FaultNone first (for table tests).
func FaultModes() []FaultMode {
	out := make([]FaultMode, 0, numFaultModes)
	for m := FaultNone; m < numFaultModes; m++ {
		out = append(out, m)
	}
	return out
}

// FailureReason is the text sent under FaultFailureReason (HTTP "failure reason", UDP error
// message), so tests can assert that a client surfaces it.
const FailureReason = "swarmtracker: injected failure"
