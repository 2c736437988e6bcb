// Package tracker implements btda's BitTorrent tracker clients: HTTP (BEP 3, 7, 23, 48) and
// UDP (BEP 15), the multi-tracker Announcer (BEP 12: every URL of every tier on its own
// schedule) that turns tracker peers into discovery.Sightings, and AnnounceOnce for the
// `btda announce` subcommand.
//
// What btda tells trackers. btda presents itself honestly as a leecher that has nothing:
// uploaded=0, downloaded=0, left=the torrent's total length in bytes, so that peers connect
// to its listener (incoming connections give the best revisit rate); a torrent of unknown
// length (magnet without metadata) is announced with left=16 KiB, never 0, which would make
// btda a seed. event=started goes with the first announce (and again with the next ones
// until a tracker accepts it), periodic announces carry no event, and event=stopped is sent
// on Remove and on shutdown to every tracker that accepted a started. UDP announces carry
// the URL's path and query as BEP 41 URLData (private UDP trackers keep passkeys there).
// The peer id is "-BD0001-" followed by 12 random alphanumerics, one per run (Azureus
// style, "BD" = btda: a stable, honest prefix rather than an imitation of a real client,
// see REFERENCE.md §3.14); the key is a random 32-bit value, one per run.
//
// Announce schedule (per tracker URL and torrent). After a success the next announce is
// due after
//
//	wait = max(Config.Interval, min interval)        if the tracker sent `min interval`
//	wait = max(Config.Interval, interval)            if it sent only `interval`
//	wait = Config.Interval                           if it sent neither
//
// so btda never announces more often than `min interval`, and when a tracker states only
// `interval`, that is the only limit it asked for and is honoured as well. A configured
// interval longer than the tracker's wins (btda then asks less often than allowed). After
// a failure the wait is an exponential back-off (Config.RetryBase doubling up to
// Config.RetryMax), never shorter than the last `min interval` the tracker gave nor than
// a BEP 31 `retry in`; `retry in: never` stops announcing to that tracker. The
// wait in force is exported as btda_tracker_interval_seconds. Scrapes run right after each
// announce, on the same schedule, unless the announce found the tracker unreachable.
// At most Config.MaxConcurrent requests are in flight at once.
//
// Hybrid torrents (BEP 52). A torrent with two wire hashes (TorrentInfo.Hashes: a hybrid's v1
// hash and truncated v2 hash) is announced under each, as libtorrent 2.0 does: every hash has
// its own announce state at each tracker URL (started, tracker id, back-off, `retry in`,
// stopped), and a round announces every hash that is due, so a tracker that knows only one
// of them delays only the other. The round's peers are merged (each address once, under the
// first hash that found it, the torrent's ID first), its scrapes too: the scrape gauges show
// the larger of the hashes' figures (see mergeScrapes). Every request counts in the request
// metrics.
//
// Address families. Trackers hand out peers of the family they are asked on, so a tracker
// whose host resolves to both an IPv4 and an IPv6 address is announced to on both (its
// first address of each family, in parallel; HTTP with one pooled client per family, UDP
// with one socket per family, IPv6 replies carrying 18-byte peers) and the replies are
// merged (see mergeAnnounces). The round fails only when every family fails and counts
// once in the metrics. Config.Source binds every socket to a source address and leaves
// out a family without one.
//
// Metrics label trackers by host name only (lower case, no port, no scheme): URLs may carry
// passkeys in the path or query, and a port adds cardinality without helping an operator.
// Two tracker URLs on the same host therefore share series; counters add up, gauges show
// whichever reported last. Cardinality: per tracker host 2 request counters, 2×10 failure
// counters (pre-created), 2 histograms, 3 gauges/counters; per (torrent, tracker host) 3
// scrape gauges, deleted when the torrent is removed.
package tracker
