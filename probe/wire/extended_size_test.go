package wire

import (
	"math"
	"testing"
)

// TestExtHandshakeMetadataSize: an absent metadata_size is -1, a present one is kept even
// when it is far too large to fetch (clamped), so that the caller can say "too large"
// rather than "missing" (issue 14).
func TestExtHandshakeMetadataSize(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    int
	}{
		{"d1:md11:ut_metadatai2eee", -1},
		{"d1:md11:ut_metadatai2ee13:metadata_sizei0ee", 0},
		{"d1:md11:ut_metadatai2ee13:metadata_sizei31235ee", 31235},
		{"d1:md11:ut_metadatai2ee13:metadata_sizei1099511627776ee", math.MaxInt32},
		{"d1:md11:ut_metadatai2ee13:metadata_sizei-5ee", -1},
	} {
		h, err := ParseExtHandshake([]byte(tc.payload))
		if err != nil {
			t.Fatalf("%s: %v", tc.payload, err)
		}
		if h.MetadataSize != tc.want {
			t.Errorf("%s: MetadataSize = %d, want %d", tc.payload, h.MetadataSize, tc.want)
		}
	}
}
