package config

import (
	"slices"
	"testing"
	"time"
)

func TestChanged(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"nothing", func(*Config) {}, nil},
		{"one scalar", func(c *Config) { c.Probe.Concurrency = 10 }, []string{"probe.concurrency"}},
		{"a duration and a list", func(c *Config) {
			c.DHT.BootstrapNodes = []string{"127.0.0.1:1"}
			c.Probe.QuietWindow = Duration(time.Second)
		}, []string{"probe.quiet_window", "dht.bootstrap_nodes"}},
		{"watch list keys too", func(c *Config) { c.Torrents.Directory = "x" }, []string{"torrents.directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := Default(), Default()
			tt.edit(&b)
			if got := Changed(&a, &b); !slices.Equal(got, tt.want) {
				t.Errorf("Changed = %q, want %q", got, tt.want)
			}
		})
	}
}
