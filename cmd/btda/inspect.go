package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"

	"github.com/btda/btda/discovery/metainfo"
)

// inspectFile is one file of a torrent in `btda inspect` output.
type inspectFile struct {
	Path   string `json:"path"`
	Length int64  `json:"length"`
	Pad    bool   `json:"pad,omitempty"`
}

// inspectResult is the JSON object `btda inspect` prints per input.
type inspectResult struct {
	Input       string        `json:"input"`
	InfohashV1  string        `json:"infohash_v1"`
	InfohashV2  string        `json:"infohash_v2"`
	Kind        string        `json:"kind,omitempty"`
	Name        string        `json:"name"`
	Pieces      int           `json:"pieces"`
	PieceLength int64         `json:"piece_length"`
	TotalLength int64         `json:"total_length"`
	Files       []inspectFile `json:"files"`
	Private     bool          `json:"private"`
	Trackers    [][]string    `json:"trackers"`
	Magnet      string        `json:"magnet,omitempty"`
	Warnings    []string      `json:"warnings,omitempty"`
	Error       string        `json:"error,omitempty"`
}

// inspect prints one JSON object per input and returns 1 when any input failed.
func inspect(inputs []string, stdout io.Writer, logger *slog.Logger) int {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	status := 0
	for _, in := range inputs {
		r := inspectOne(in)
		if r.Error != "" {
			status = 1
			logger.Debug("input failed", "input", in, "err", r.Error)
		}
		if err := enc.Encode(r); err != nil {
			logger.Error("writing output", "err", err)
			return 1
		}
	}
	return status
}

func inspectOne(in string) inspectResult {
	r := inspectResult{Input: in, Files: []inspectFile{}, Trackers: [][]string{}}
	if strings.HasPrefix(strings.ToLower(in), "magnet:") {
		m, err := metainfo.ParseMagnet(in)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		r.InfohashV1, r.InfohashV2 = m.HexV1(), m.HexV2()
		r.Kind = "magnet"
		r.Name = m.Name
		if len(m.Trackers) > 0 {
			// A magnet's tr parameters form one tier: a client may use any of them.
			r.Trackers = [][]string{m.Trackers}
		}
		r.TotalLength = m.Length
		return r
	}
	t, err := metainfo.Load(in)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	return summarize(in, t)
}

// summarize is the inspect result of a parsed torrent.
func summarize(in string, t *metainfo.Torrent) inspectResult {
	r := inspectResult{Input: in, Files: []inspectFile{}, Trackers: [][]string{}}
	r.InfohashV1 = t.HexV1()
	if r.InfohashV1 == "" {
		// A v2-only torrent: peers never use its SHA-1, but other tools print it as the
		// v1 hash, so users can match it.
		r.InfohashV1 = t.InfoSHA1.String()
	}
	r.InfohashV2 = t.HexV2()
	r.Kind = t.Kind.String()
	r.Name = t.Name
	r.Pieces = t.Pieces
	r.PieceLength = t.PieceLength
	r.TotalLength = t.TotalLength
	for _, f := range t.Files {
		r.Files = append(r.Files, inspectFile{Path: f.PathString(), Length: f.Length, Pad: f.Pad})
	}
	r.Private = t.Private
	if t.Trackers != nil {
		r.Trackers = t.Trackers
	}
	r.Magnet = t.Magnet().String()
	r.Warnings = t.Warnings
	return r
}
