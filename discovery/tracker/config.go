package tracker

import (
	"log/slog"
	"time"

	"github.com/btda/btda/internal/srcaddr"
)

// Config configures the tracker clients. Zero fields take the defaults noted.
type Config struct {
	Port     uint16        // our listen port, sent as `port`
	NumWant  int32         // `numwant`; default 200
	PeerID   [20]byte      // zero: NewPeerID()
	Key      uint32        // zero: NewKey()
	Interval time.Duration // configured tracker request interval; default DefaultInterval (see package doc)

	RetryBase time.Duration // first back-off after a failure; default 60 s
	RetryMax  time.Duration // back-off cap; default 30 min

	HTTPTimeout  time.Duration // whole HTTP request incl. body; default DefaultTimeout
	MaxRedirects int           // default 5
	MaxBodyBytes int64         // default 2 MiB
	UserAgent    string        // default "btda/0.1"

	// UDP retransmission (BEP 15): wait UDPBase × 2^n for n = 0..UDPRetries, each wait
	// capped at UDPMaxWait. BEP 15 says 15 s and n up to 8 (over an hour); the default
	// stops at n = 2 (15+30+60 s) so that one dead tracker costs less than an interval.
	UDPBase    time.Duration // default DefaultTimeout
	UDPRetries int           // default 2, at most 8
	UDPMaxWait time.Duration // default 15 s × 2^8

	StopTimeout time.Duration // bound on the event=stopped round at shutdown; default 5 s

	// MaxConcurrent bounds tracker requests in flight at once (all trackers, all
	// torrents), so that a thousand torrents do not open ten thousand connections at
	// start. Default 32.
	MaxConcurrent int

	// Source, when set, binds every tracker socket to its address of the tracker's
	// family; a family without a source address is not used (see srcaddr).
	Source srcaddr.Addrs

	Logger *slog.Logger // default: discard

	lookup lookupFunc // host name resolution; nil: the default resolver (tests replace it)

	// OnResult, if set, is called after every announce round of every tracker, from that
	// tracker's goroutine: it may be called concurrently and should return quickly.
	OnResult func(Result)
}

// Defaults of the zero Config fields, also the configuration file's defaults.
const (
	DefaultNumWant = 200
	// DefaultInterval is the 2015 tool's tracker_request_interval; a tracker's min
	// interval still wins.
	DefaultInterval = 300 * time.Second
	// DefaultTimeout bounds an HTTP request and is the first UDP wait (BEP 15 doubles it
	// on each retransmission): the 2015 tool's network_timeout.
	DefaultTimeout = 6 * time.Second
)

func (c Config) withDefaults() Config {
	if c.NumWant == 0 {
		c.NumWant = DefaultNumWant
	}
	if c.PeerID == [20]byte{} {
		c.PeerID = NewPeerID()
	}
	if c.Key == 0 {
		c.Key = NewKey()
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 60 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Minute
	}
	if c.RetryMax < c.RetryBase {
		c.RetryMax = c.RetryBase
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = DefaultTimeout
	}
	if c.MaxRedirects <= 0 {
		c.MaxRedirects = 5
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 2 << 20
	}
	if c.UserAgent == "" {
		c.UserAgent = "btda/0.1"
	}
	if c.UDPBase <= 0 {
		c.UDPBase = DefaultTimeout
	}
	if c.UDPRetries <= 0 {
		c.UDPRetries = 2
	}
	if c.UDPRetries > 8 {
		c.UDPRetries = 8
	}
	if c.UDPMaxWait <= 0 {
		c.UDPMaxWait = 15 * time.Second << 8
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 32
	}
	if c.lookup == nil {
		c.lookup = defaultLookup
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
