// Command holdpeers is a load-test peer server for btda's open-sessions benchmark. It
// listens on loopback addresses, and on every connection reads a BEP 3 handshake, answers
// with the same info hash and a bitfield, then holds the connection open without writing
// until the other side closes it (or -hold passes). It runs as its own process so the
// prober under test has the whole per-process descriptor limit to itself.
//
// It prints one "listen ADDR:PORT" line per listener, then "ready". It exits when stdin
// closes (its parent died) or on SIGINT/SIGTERM, and prints "peak N" (the most
// connections it held at once) and "served N" before exiting.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const protocol = "\x13BitTorrent protocol"

func main() {
	addrs := flag.String("listen", "127.0.0.2:0", "comma-separated loopback addresses to listen on")
	pieces := flag.Int("pieces", 1000, "piece count of the bitfield sent; the first half are set")
	hold := flag.Duration("hold", 2*time.Minute, "longest time a connection is held")
	flag.Parse()

	// Every connection is a descriptor: take the hard limit.
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // the parent closing our stdin ends us too
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()

	// The bitfield message: first half of the pieces set, spare bits clear.
	bf := make([]byte, (*pieces+7)/8)
	for i := 0; i < *pieces/2; i++ {
		bf[i/8] |= 0x80 >> (i % 8)
	}
	msg := binary.BigEndian.AppendUint32(nil, uint32(1+len(bf)))
	msg = append(append(msg, 5), bf...)

	var (
		open, peak, served atomic.Int64
		wg                 sync.WaitGroup
		lns                []net.Listener
	)
	for _, a := range strings.Split(*addrs, ",") {
		lc := net.ListenConfig{}
		ln, err := lc.Listen(ctx, "tcp", strings.TrimSpace(a))
		if err != nil {
			fmt.Fprintln(os.Stderr, "holdpeers:", err)
			os.Exit(1)
		}
		lns = append(lns, ln)
		fmt.Println("listen", ln.Addr())
	}
	for _, ln := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue // EMFILE and the like: keep serving the others
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					stopConn := context.AfterFunc(ctx, func() { c.Close() })
					defer stopConn()
					n := open.Add(1)
					defer open.Add(-1)
					for p := peak.Load(); n > p; p = peak.Load() { // peak = max(peak, n) under races
						if peak.CompareAndSwap(p, n) {
							break
						}
					}
					served.Add(1)
					serve(c, msg, *hold)
				}()
			}
		}()
	}
	fmt.Println("ready")
	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	wg.Wait()
	fmt.Println("peak", peak.Load())
	fmt.Println("served", served.Load())
}

// serve answers one connection and holds it until the other side closes or hold passes.
func serve(c net.Conn, bitfield []byte, hold time.Duration) {
	_ = c.SetDeadline(time.Now().Add(hold))
	br := bufio.NewReaderSize(c, 128)
	var hs [68]byte
	if _, err := io.ReadFull(br, hs[:]); err != nil || string(hs[:20]) != protocol {
		return
	}
	out := make([]byte, 0, 68+len(bitfield))
	out = append(out, protocol...)
	out = append(out, 0, 0, 0, 0, 0, 0, 0, 0) // no extensions: the bitfield is all we say
	out = append(out, hs[28:48]...)           // the info hash it asked for
	out = append(out, "-HP0001-holdpeers000"...)
	out = append(out, bitfield...)
	if _, err := c.Write(out); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, br) // hold: until EOF, reset or the deadline
}
