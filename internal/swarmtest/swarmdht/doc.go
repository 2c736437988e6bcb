// Package swarmdht runs a small Mainline DHT (BEP 5) on loopback for tests: n
// github.com/anacrolix/dht/v2 nodes on 127.0.0.1, each on its own UDP port, that know only each
// other. A client under test (btda's DHT source) bootstraps from Cluster.Addrs and finds the
// test swarm's peers with ordinary get_peers traversals.
//
// How peers get in: Announce writes them straight into every node's peer store (no
// announce_peer traversal), so any get_peers that reaches any node returns them; that is
// simple and does not depend on which nodes a traversal happens to reach. Real announce_peer
// queries (from the client under test) are handled by anacrolix/dht as usual: the receiving
// node stores the peer and the query is listed by AnnouncePeers.
//
// Faithfulness: each node answers with at most MaxValues peers per get_peers reply, keys peers
// by IP and port, and checks announce_peer tokens. Node ID security (BEP 42) is off because
// every node shares the loopback IP. No node ever resolves or contacts the public bootstrap
// routers: StartingNodes returns the other cluster nodes only.
//
// Stop makes the nodes silent (traffic is dropped, ports stay bound), to test that a client's
// DHT source stalls and recovers (Resume); Close shuts them down.
package swarmdht
