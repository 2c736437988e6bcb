package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/btda/btda/collector/store"
	"github.com/btda/btda/report"
)

type reportOptions struct {
	src    dataSource
	output string // the HTML file
}

// reportCmd writes the HTML report to o.output and the text summary to stdout.
func reportCmd(ctx context.Context, o reportOptions, stdout, stderr io.Writer, logger *slog.Logger) int {
	h, _, err := o.src.filters()
	if err != nil {
		fmt.Fprintf(stderr, "btda report: %v\n", err)
		return 2
	}
	var src report.Source
	if o.src.url != "" {
		src = report.URLSource(apiClient, o.src.url)
	} else {
		var st *store.Store
		if st, err = o.src.openStore(logger); err != nil {
			fmt.Fprintf(stderr, "btda report: %v\n", err)
			return 1
		}
		defer st.Close()
		src = report.StoreSource(st, st.Path())
	}
	r, err := report.Build(ctx, src, h, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "btda report: %v\n", err)
		return 1
	}
	f, err := os.Create(o.output)
	if err != nil {
		fmt.Fprintf(stderr, "btda report: %v\n", err)
		return 1
	}
	err = errors.Join(r.WriteHTML(f), f.Close())
	if err == nil {
		err = r.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "btda report: %v\n", err)
		return 1
	}
	logger.Info("report written", "file", o.output, "torrents", len(r.Torrents))
	return 0
}
