// Package swarmtracker is a BitTorrent tracker for tests: HTTP (BEP 3, 7, 23, 48 scrape
// convention) and UDP (BEP 15) on loopback only, serving the test swarm's peers, recording every
// request exactly as received, and switching into fault modes at run time.
//
// It is written apart from btda's tracker clients (it imports none of them) so that the
// clients are tested against an independent reading of the specs.
//
// Peers: SetPeers sets the swarm's peers for a torrent; a client's announce adds the announcing
// peer (source IP of the request, announced port) until it sends event=stopped, as a real
// tracker does. Each announce hands out a uniform random subset of numwant peers (default 50,
// capped at 200), never the requester itself, reproducible from Config.Seed. HTTP replies are
// compact (IPv4 "peers" 6 bytes each, IPv6 "peers6" 18 bytes each, "peers6" only when non-empty)
// unless compact=0, which gives the BEP 3 list of {"peer id", "ip", "port"} (no "peer id" with
// no_peer_id=1). UDP replies carry IPv4 peers over IPv4 and IPv6 peers over IPv6.
//
// Records: Announces/AnnouncesFor give every parsed announce exactly as sent (left, event, key,
// numwant, path, User-Agent, BEP 41 URLData, ...), so tests can assert what a client sent.
// Requests the parser refuses (missing or malformed fields, a parameter given twice, an unknown
// or expired UDP connection ID) get a failure reason (HTTP 400) or an error packet (UDP; or no
// reply with Config.DropBadConnectionID, as opentracker does) and are listed by Rejections.
// UDP connection IDs are tied to the client IP and accepted for ConnectionIDLifetime (2 min).
//
// Compact peers put the port big-endian (netip.AddrPort.MarshalBinary would put it
// little-endian); TestAnacrolixClientInterop checks the encoding against anacrolix/torrent's
// tracker client.
//
// Fault modes (SetFault for announce and scrape, SetConnectFault for UDP connect):
//
//	mode               HTTP                                   UDP
//	none               normal                                 normal
//	failure_reason     200 d14:failure reason...e             action 3 error
//	http_500           500                                    normal
//	garbage            200, body not bencode                  random bytes
//	non_dict           200, bencoded list                     normal
//	huge_body          200, valid 8 MiB dictionary            normal
//	slow               held until client gives up/SlowHold    reply sent after SlowHold
//	redirect_loop      302 to itself                          normal
//	no_reply           connection closed, no response         nothing sent
//	truncated          half the body, full Content-Length     reply less its last 3 bytes
//	wrong_transaction  normal                                 transaction ID + 1
//	foreign_packet     normal                                 random bytes
//
// The swarm is only updated by announces answered normally (none, slow).
package swarmtracker
