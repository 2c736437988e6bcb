package probe

import (
	"strconv"
	"strings"
)

// azureusClients maps the two letters of an Azureus-style peer_id ("-XX1234-") to a
// client family. Only codes seen in the wild that a measurement is likely to meet.
var azureusClients = map[string]string{
	"7T": "aTorrent", "AG": "Ares", "A~": "Ares", "AR": "Arctic", "AZ": "Vuze", "BB": "BitBuddy",
	"BC": "BitComet", "BF": "Bitflu", "BG": "BTG", "BI": "BiglyBT", "BL": "BitBlinder",
	"BN": "Baidu Netdisk", "BR": "BitRocket", "BS": "BTSlave", "BT": "BitTorrent",
	"BW": "BitWombat", "BX": "Bittorrent X", "CD": "Enhanced CTorrent", "CT": "CTorrent",
	"DA": "btda", "DE": "Deluge", "DP": "Propagate Data Client", "EB": "EBit",
	"ES": "electric sheep", "FC": "FileCroc", "FD": "Free Download Manager", "FT": "FoxTorrent",
	"FW": "FrostWire", "FX": "Freebox BitTorrent", "GS": "GSTorrent", "GT": "anacrolix/torrent",
	"HL": "Halite", "HN": "Hydranode", "IL": "iLivid", "KG": "KGet", "KT": "KTorrent",
	"LC": "LeechCraft", "LH": "LH-ABC", "LP": "Lphant", "LT": "libtorrent (Rasterbar)",
	"lt": "libTorrent (rakshasa)", "LW": "LimeWire", "MG": "MediaGet", "MO": "MonoTorrent",
	"MP": "MooPolice", "MR": "Miro", "MT": "MoonlightTorrent", "NX": "Net Transport",
	"OS": "OneSwarm", "OT": "OmegaTorrent", "PD": "Pando", "PI": "PicoTorrent",
	"PT": "Popcorn Time", "qB": "qBittorrent", "QD": "QQDownload", "QT": "Qt 4 Torrent example",
	"RT": "Retriever", "RZ": "RezTorrent", "S~": "Shareaza alpha/beta", "SB": "Swiftbit",
	"SD": "Xunlei", "SM": "SoMud", "SP": "BitSpirit", "SS": "SwarmScope", "ST": "SymTorrent",
	"SZ": "Shareaza", "TB": "Torch", "TE": "terasaur Seed Bank", "TL": "Tribler",
	"TN": "TorrentDotNET", "TR": "Transmission", "TS": "Torrentstorm", "TT": "TuoTu",
	"UE": "µTorrent Embedded", "UL": "uLeecher!", "UM": "µTorrent for Mac", "UT": "µTorrent",
	"UW": "µTorrent Web", "VG": "Vagaa", "WD": "WebTorrent Desktop", "WT": "BitLet",
	"WW": "WebTorrent", "WY": "FireTorrent", "XF": "Xfplay", "XL": "Xunlei", "XS": "XSwifter",
	"XT": "XanTorrent", "XX": "Xtorrent", "ZT": "ZipTorrent",
}

// shadowClients maps the first character of a Shadow-style peer_id ("T03I-----").
var shadowClients = map[byte]string{
	'A': "ABC", 'O': "Osprey Permaseed", 'Q': "BTQueue", 'R': "Tribler", 'S': "Shadow",
	'T': "BitTornado", 'U': "UPnP NAT BitTorrent",
}

// DecodePeerID returns the client family and version a peer_id announces ("" when it
// follows no known convention). Peers can put anything here: it is a claim, not a fact.
func DecodePeerID(id [20]byte) (family, version string) {
	switch {
	case id[0] == '-' && id[7] == '-' && isAlnumOrTilde(id[1]) && isAlnumOrTilde(id[2]):
		fam, ok := azureusClients[string(id[1:3])]
		if !ok {
			return "", ""
		}
		return fam, azureusVersion(string(id[1:3]), id[3:7])
	case string(id[:3]) == "A2-":
		return "aria2", dashedVersion(id[3:])
	case string(id[:4]) == "exbc":
		return "BitComet", strconv.Itoa(int(id[4])) + "." + strconv.Itoa(int(id[5]))
	case id[0] == 'M' && id[1] >= '0' && id[1] <= '9':
		return "BitTorrent (Mainline)", dashedVersion(id[1:])
	}
	if fam, ok := shadowClients[id[0]]; ok {
		if v, ok := shadowVersion(id[1:]); ok {
			return fam, v
		}
	}
	return "", ""
}

func isAlnumOrTilde(c byte) bool {
	return c == '~' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

// base36 reads a version character: digits, then A-Z as 10-35 (libtorrent's "-LT20A0-").
func base36(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// azureusVersion reads the four version characters: major.minor.patch, plus a fourth
// component when it is a non-zero digit (a letter there is a build tag, e.g. µTorrent's).
func azureusVersion(code string, v []byte) string {
	var n [4]int
	for i := 0; i < 3; i++ {
		d, ok := base36(v[i])
		if !ok {
			return ""
		}
		n[i] = d
	}
	if code == "TR" && n[0] < 4 {
		// Transmission before 4.0 wrote "-TR2940-" for 2.94.
		return strconv.Itoa(n[0]) + "." + strconv.Itoa(n[1]) + strconv.Itoa(n[2])
	}
	s := strconv.Itoa(n[0]) + "." + strconv.Itoa(n[1]) + "." + strconv.Itoa(n[2])
	if d, ok := base36(v[3]); ok && d != 0 && v[3] <= '9' {
		s += "." + strconv.Itoa(d)
	}
	return s
}

// dashedVersion reads "1-36-0-…" (aria2, Mainline) up to the first "--" or non-digit.
func dashedVersion(b []byte) string {
	var parts []string
	for _, f := range strings.Split(string(b), "-") {
		if f == "" {
			break
		}
		if _, err := strconv.Atoi(f); err != nil || len(f) > 3 {
			break
		}
		parts = append(parts, strings.TrimLeft(f, "0"))
		if parts[len(parts)-1] == "" {
			parts[len(parts)-1] = "0"
		}
	}
	return strings.Join(parts, ".")
}

// shadowVersion reads up to five base-64 version characters followed by "---".
func shadowVersion(b []byte) (string, bool) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-"
	end := strings.Index(string(b[:8]), "---")
	if end <= 0 || end > 5 {
		return "", false
	}
	parts := make([]string, 0, end)
	for _, c := range b[:end] {
		i := strings.IndexByte(alphabet, c)
		if i < 0 {
			return "", false
		}
		parts = append(parts, strconv.Itoa(i))
	}
	return strings.Join(parts, "."), true
}
