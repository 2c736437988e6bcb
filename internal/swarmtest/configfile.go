package swarmtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// ParseConfig reads a YAML swarm description (the fields of Config, by their
// yaml names; durations like "90s"). Unknown fields are errors, so a typo
// does not silently fall back to a default.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if len(data) > 1<<20 {
		return c, fmt.Errorf("swarm config: %d bytes, more than 1 MiB", len(data))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("swarm config: %w", err)
	}
	return c, nil
}
