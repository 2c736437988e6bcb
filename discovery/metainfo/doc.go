// Package metainfo imports torrents: .torrent files (BEP 3 v1, BEP 52 v2 and hybrid),
// info dictionaries fetched from peers (BEP 9), and magnet URIs.
//
// Parsing is strict where it matters to measurement (hashes over the info bytes exactly
// as they stand, piece count and length, v1/v2 agreement of a hybrid) and lenient about
// cosmetic fields (a malformed comment or tracker list is a warning, not a failure).
// Every input is bounded (file size, nesting, values, files, pieces, trackers), and every
// error names the field at fault: "info.piece length: must be > 0, got -16384".
package metainfo
