package probe

import "time"

// Defaults of the zero SessionConfig and ListenerConfig fields, also the configuration
// file's defaults: the 2015 tool's network_timeout for every wait, its receive_message_max,
// and caps the 2015 tool lacked.
const (
	DefaultDialTimeout      = 6 * time.Second
	DefaultHandshakeTimeout = 6 * time.Second
	// DefaultQuietWindow: 6 s of quiet caught 93.9 % of message gaps in 2015.
	DefaultQuietWindow = 6 * time.Second
	DefaultSessionCap  = 30 * time.Second
	DefaultMaxMessages = 256
	DefaultMaxPEX      = 500

	// DefaultListenAddress is where incoming peers connect: the 2015 tool's last port.
	DefaultListenAddress = ":6884"
	DefaultMaxPerIP      = 4
	DefaultMaxTotal      = 2000
	// DefaultUTP: listen for uTP and dial it when TCP fails; libtorrent and µTorrent
	// peers dial uTP first, and uTP-only peers exist.
	DefaultUTP = true
)
