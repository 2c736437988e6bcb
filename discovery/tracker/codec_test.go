package tracker

import (
	"encoding/binary"
	"errors"
	"github.com/btda/btda/discovery"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPercentEncode(t *testing.T) {
	tests := []struct {
		in   []byte
		want string
	}{
		{testHash[:], "%00%20-._~Az0%FF%25%2B%26%3D%3F%2F%80%12a9"},
		{[]byte("-BD0001-abcXYZ012345"), "-BD0001-abcXYZ012345"},
		{[]byte{}, ""},
		{[]byte(" +"), "%20%2B"},
	}
	for _, tt := range tests {
		if got := percentEncode(tt.in); got != tt.want {
			t.Errorf("percentEncode(%x) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHTTPAnnounceURL(t *testing.T) {
	r := AnnounceRequest{Hash: testHash, Key: 0xDEADBEEF, Port: 65001, Left: 1 << 40, Event: EventStarted, NumWant: 50, TrackerID: "a b"}
	copy(r.PeerID[:], "-BD0001-abcdefghijkl")
	want := "?info_hash=%00%20-._~Az0%FF%25%2B%26%3D%3F%2F%80%12a9&peer_id=-BD0001-abcdefghijkl&port=65001" +
		"&uploaded=0&downloaded=0&left=1099511627776&compact=1&numwant=50&key=DEADBEEF&event=started&trackerid=a%20b"
	tests := []struct{ base, want string }{
		{"http://t.example/announce", "http://t.example/announce" + want},
		{"http://t.example/announce?passkey=x", "http://t.example/announce?passkey=x&" + want[1:]},
		{"http://t.example/announce?", "http://t.example/announce?" + want[1:]},
		{"http://t.example/announce#frag", "http://t.example/announce" + want},
	}
	for _, tt := range tests {
		if got := httpAnnounceURL(tt.base, r); got != tt.want {
			t.Errorf("httpAnnounceURL(%q)\n got %q\nwant %q", tt.base, got, tt.want)
		}
	}
	r.Event, r.TrackerID = EventNone, ""
	if got := httpAnnounceURL("http://x/announce", r); strings.Contains(got, "event=") || strings.Contains(got, "trackerid") {
		t.Errorf("periodic announce carries event or trackerid: %s", got)
	}
}

func TestScrapeURL(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"http://example.com/announce", "http://example.com/scrape", true},
		{"http://example.com/x/announce", "http://example.com/x/scrape", true},
		{"http://example.com/announce.php", "http://example.com/scrape.php", true},
		{"http://example.com/announce?x2%0644", "http://example.com/scrape?x2%0644", true},
		{"http://example.com/announce?x=y%3D", "http://example.com/scrape?x=y%3D", true},
		{"https://example.com/passkey123/announce", "https://example.com/passkey123/scrape", true},
		{"http://example.com/a", "", false},
		{"http://example.com/announce/x", "", false},
		{"http://example.com/x%064announce", "", false},
		{"udp://example.com:80/announce", "", false},
		{"http://example.com", "", false},
	}
	for _, tt := range tests {
		got, ok := ScrapeURL(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ScrapeURL(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://tracker.example:8080/announce", "http://tracker.example:8080/announce"},
		{"https://t.example/announce?passkey=s3cr3t&uid=7", "https://t.example/announce?passkey=REDACTED&uid=REDACTED"},
		{"https://t.example/0123456789abcdef0123/announce", "https://t.example/REDACTED/announce"},
		{"https://user:pw@t.example/ab12cd34ef56gh/announce", "https://t.example/REDACTED/announce"},
		{"udp://t.example:6969/announce", "udp://t.example:6969/announce"},
		{"::nonsense", "(unparsable tracker URL)"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTrackerLabel(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://Tracker.Example:8080/0123456789abcdef/announce?pk=1", "tracker.example"},
		{"udp://[::1]:6969", "::1"},
		{"nonsense", "invalid"},
	}
	for _, tt := range tests {
		if got := TrackerLabel(tt.in); got != tt.want {
			t.Errorf("TrackerLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLeft(t *testing.T) {
	for in, want := range map[int64]int64{0: 16384, -1: 16384, 1: 1, 5_000_000_123: 5_000_000_123} {
		if got := left(discovery.TorrentInfo{Length: in}); got != want {
			t.Errorf("left(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestNewPeerID(t *testing.T) {
	a, b := NewPeerID(), NewPeerID()
	if !strings.HasPrefix(string(a[:]), "-BD0001-") || a == b {
		t.Errorf("peer ids %q %q", a, b)
	}
	for _, c := range a[8:] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			t.Errorf("peer id %q has non-alphanumeric %q", a, c)
		}
	}
}

func TestDecodeHTTPAnnounce(t *testing.T) {
	p6 := netip.MustParseAddrPort("[2001:db8::1]:443")
	a6 := p6.Addr().As16()
	peers6 := string(a6[:]) + "\x01\xbb"
	tests := []struct {
		name   string
		body   string
		want   *AnnounceResponse
		reason Reason
	}{
		{"compact", "d8:intervali1800e12:min intervali900e5:peers12:" + compact4(testPeers) + "e",
			&AnnounceResponse{Interval: 1800 * time.Second, MinInterval: 900 * time.Second, Seeders: -1, Leechers: -1, Peers: testPeers}, ""},
		{"peers6 and extras", "d8:completei5e10:incompletei6e8:intervali60e5:peers0:6:peers618:" + peers6 + "10:tracker id3:abc15:warning message4:hmm!e",
			&AnnounceResponse{Interval: time.Minute, Seeders: 5, Leechers: 6, TrackerID: "abc", Warning: "hmm!", Peers: []netip.AddrPort{p6}}, ""},
		{"dict peers", "d5:peersld2:ip9:127.1.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eed2:ip9:127.1.0.24:porti51413eed2:ip11:example.com4:porti1eed2:ip7:1.2.3.44:porti0eeee",
			&AnnounceResponse{Seeders: -1, Leechers: -1, Peers: testPeers}, ""},
		{"port zero dropped", "d5:peers12:\x7f\x01\x00\x01\x00\x00" + compact4(testPeers[1:]) + "e",
			&AnnounceResponse{Seeders: -1, Leechers: -1, Peers: testPeers[1:]}, ""},
		{"huge interval capped", "d8:intervali99999999999e5:peers0:e",
			&AnnounceResponse{Interval: 24 * time.Hour, Seeders: -1, Leechers: -1, Peers: []netip.AddrPort{}}, ""},
		{"trailing newline", "d5:peers0:e\r\n", &AnnounceResponse{Seeders: -1, Leechers: -1, Peers: []netip.AddrPort{}}, ""},
		{"failure reason", "d14:failure reason17:torrent not founde", nil, ReasonFailure},
		{"failure reason retry in", "d14:failure reason4:busy8:retry ini5ee", nil, ReasonFailure},
		{"non-dict", "li1ei2ee", nil, ReasonBadResponse},
		{"string", "4:spam", nil, ReasonBadResponse},
		{"html", "<html>502 Bad Gateway</html>", nil, ReasonBadResponse},
		{"empty", "", nil, ReasonBadResponse},
		{"no peers", "d8:intervali5ee", nil, ReasonBadResponse},
		{"bad compact length", "d5:peers5:abcdee", nil, ReasonBadResponse},
		{"peers integer", "d5:peersi5ee", nil, ReasonBadResponse},
		{"peers6 list", "d6:peers6lee", nil, ReasonBadResponse},
		{"truncated", "d8:intervali1800e5:peers12:abc", nil, ReasonBadResponse},
		{"huge string length", "d5:peers2000000000:e", nil, ReasonBadResponse},
		{"deep nesting", strings.Repeat("l", 100000), nil, ReasonBadResponse},
		{"trailing junk", "d5:peers0:ee", nil, ReasonBadResponse},
		{"int key", "di1ei2ee", nil, ReasonBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeHTTPAnnounce([]byte(tt.body))
			if ReasonOf(err) != tt.reason {
				t.Fatalf("reason %q (err %v), want %q", ReasonOf(err), err, tt.reason)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRetryIn(t *testing.T) {
	tests := []struct {
		body    string
		retryIn time.Duration
		never   bool
	}{
		{"d14:failure reason4:busy8:retry ini5ee", 5 * time.Minute, false},
		{"d14:failure reason4:gone8:retry in5:nevere", 0, true},
		{"d14:failure reason4:busy8:retry ini-5ee", 0, false},
		{"d14:failure reason4:busye", 0, false},
	}
	for _, tt := range tests {
		_, err := decodeHTTPAnnounce([]byte(tt.body))
		var fr *failureReply
		if !errors.As(err, &fr) || fr.retryIn != tt.retryIn || fr.never != tt.never {
			t.Errorf("%q: %v (%+v)", tt.body, err, fr)
		}
	}
}

func TestDecodeHTTPScrape(t *testing.T) {
	ok := "d5:filesd20:" + string(testHash[:]) + "d8:completei3e10:downloadedi5e10:incompletei4eeee"
	tests := []struct {
		name   string
		body   string
		want   *ScrapeResponse
		reason Reason
	}{
		{"ok", ok, &ScrapeResponse{Seeders: 3, Leechers: 4, Downloaded: 5}, ""},
		{"other hash", "d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei3eeee", nil, ReasonBadResponse},
		{"no files", "de", nil, ReasonBadResponse},
		{"entry not dict", "d5:filesd20:" + string(testHash[:]) + "i1eee", nil, ReasonBadResponse},
		{"missing field", "d5:filesd20:" + string(testHash[:]) + "d8:completei3eeee", nil, ReasonBadResponse},
		{"negative", "d5:filesd20:" + string(testHash[:]) + "d8:completei-3e10:downloadedi5e10:incompletei4eeee", nil, ReasonBadResponse},
		{"failure", "d14:failure reason4:nopee", nil, ReasonFailure},
		{"list", "le", nil, ReasonBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeHTTPScrape([]byte(tt.body), testHash)
			if ReasonOf(err) != tt.reason {
				t.Fatalf("reason %q (err %v), want %q", ReasonOf(err), err, tt.reason)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUDPCodec(t *testing.T) {
	r := AnnounceRequest{Hash: testHash, Key: 0xCAFEBABE, Port: 65001, Left: 123456789012, Event: EventStopped}
	copy(r.PeerID[:], "-BD0001-abcdefghijkl")
	p := encodeUDPAnnounce(0x0102030405060708, 0x99, r, "")
	if len(p) != 98 {
		t.Fatalf("announce is %d bytes", len(p))
	}
	long := "/announce?pk=" + strings.Repeat("x", 300)
	if got := encodeUDPAnnounce(1, 2, r, long)[98:]; string(got) != "\x02\xff"+long[:255]+"\x02\x3a"+long[255:] {
		t.Errorf("BEP 41 URLData options %q", got)
	}
	for in, want := range map[string]string{"udp://t:1/announce?pk=a%20b": "/announce?pk=a%20b", "udp://t:1": "", "udp://t:1/": "/"} {
		if got := udpURLData(in); got != want {
			t.Errorf("udpURLData(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"conn id", binary.BigEndian.Uint64(p), 0x0102030405060708},
		{"action", uint64(binary.BigEndian.Uint32(p[8:])), 1},
		{"tid", uint64(binary.BigEndian.Uint32(p[12:])), 0x99},
		{"downloaded", binary.BigEndian.Uint64(p[56:]), 0},
		{"left", binary.BigEndian.Uint64(p[64:]), 123456789012},
		{"uploaded", binary.BigEndian.Uint64(p[72:]), 0},
		{"event", uint64(binary.BigEndian.Uint32(p[80:])), 3},
		{"key", uint64(binary.BigEndian.Uint32(p[88:])), 0xCAFEBABE},
		{"numwant", uint64(binary.BigEndian.Uint32(p[92:])), 0xFFFFFFFF},
		{"port", uint64(binary.BigEndian.Uint16(p[96:])), 65001},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}

	hdr := func(action, tid uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, action), tid)
	}
	ann := append(hdr(1, 7), 0, 0, 0x07, 0x08, 0, 0, 0, 4, 0, 0, 0, 5)
	got, err := decodeUDPAnnounce(append(ann, compact4(testPeers)...), false)
	want := &AnnounceResponse{Interval: 1800 * time.Second, Leechers: 4, Seeders: 5, Peers: testPeers}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("decodeUDPAnnounce v4 = %+v, %v", got, err)
	}
	a6 := netip.MustParseAddr("2001:db8::7").As16()
	got, err = decodeUDPAnnounce(append(append(ann, a6[:]...), 0x1a, 0xe1), true)
	if err != nil || len(got.Peers) != 1 || got.Peers[0] != netip.MustParseAddrPort("[2001:db8::7]:6881") {
		t.Errorf("decodeUDPAnnounce v6 = %+v, %v", got, err)
	}
	for _, bad := range [][]byte{ann[:19], append(ann, 1, 2, 3), append(hdr(2, 7), ann[8:]...)} {
		if _, err := decodeUDPAnnounce(bad, false); err == nil {
			t.Errorf("decodeUDPAnnounce(%x) accepted", bad)
		}
	}
	sc, err := decodeUDPScrape(append(hdr(2, 7), 0, 0, 0, 3, 0, 0, 0, 5, 0, 0, 0, 4))
	if err != nil || *sc != (ScrapeResponse{Seeders: 3, Downloaded: 5, Leechers: 4}) {
		t.Errorf("decodeUDPScrape = %+v, %v", sc, err)
	}
	if _, err := decodeUDPScrape(hdr(2, 7)); err == nil {
		t.Error("short scrape accepted")
	}
	if id, err := decodeUDPConnect(append(hdr(0, 7), 1, 2, 3, 4, 5, 6, 7, 8)); err != nil || id != 0x0102030405060708 {
		t.Errorf("decodeUDPConnect = %x, %v", id, err)
	}
	if _, err := decodeUDPConnect(hdr(0, 7)); err == nil {
		t.Error("short connect accepted")
	}
	if msg := decodeUDPError(append(hdr(3, 7), "bad\xffhash"...)); msg != "bad?hash" {
		t.Errorf("decodeUDPError = %q", msg)
	}
}

func TestNextDelay(t *testing.T) {
	cfg := Config{Interval: 300 * time.Second, RetryBase: 60 * time.Second, RetryMax: 30 * time.Minute}
	tests := []struct {
		name string
		st   trackerState
		want time.Duration
	}{
		{"nothing from tracker", trackerState{}, 300 * time.Second},
		{"min interval above configured", trackerState{interval: 1800 * time.Second, minInterval: 900 * time.Second}, 900 * time.Second},
		{"min interval below configured", trackerState{interval: 1800 * time.Second, minInterval: 60 * time.Second}, 300 * time.Second},
		{"interval only, longer", trackerState{interval: 1800 * time.Second}, 1800 * time.Second},
		{"interval only, shorter", trackerState{interval: 120 * time.Second}, 300 * time.Second},
		{"first failure", trackerState{failures: 1}, 60 * time.Second},
		{"third failure", trackerState{failures: 3}, 240 * time.Second},
		{"many failures capped", trackerState{failures: 80}, 30 * time.Minute},
		{"failure never below min interval", trackerState{failures: 1, minInterval: 900 * time.Second}, 900 * time.Second},
		{"failure with BEP 31 retry in", trackerState{failures: 1, retryIn: 10 * time.Minute}, 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := tt.st.nextDelay(cfg); got != tt.want {
			t.Errorf("%s: nextDelay = %v, want %v", tt.name, got, tt.want)
		}
	}
}
