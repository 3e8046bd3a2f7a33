// rpcbench: a minimal Go gRPC load client for the containerd v1 API.
//
// It needs no generated code: a pass-through codec sends a raw (empty)
// protobuf body to /containerd.services.version.v1.Version/Version and
// discards the reply bytes. It dials a unix socket with insecure
// credentials and :authority "localhost", like ctr does.
//
//	rpcbench -addr /path/to.sock -n 10000          # sequential: per-call latency
//	rpcbench -addr /path/to.sock -c 64 -d 3s       # 64 in flight: throughput
//
// Prints one JSON object: {"mode","calls","errors","per_call_us_median",
// "per_call_us_mean","p99_us","calls_per_s","elapsed_s"}.
//
// Built offline against Debian's golang-google-grpc-dev (GOPATH mode):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o bench/.bin/rpcbench ./bench/go/rpcbench
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// rawCodec passes []byte through unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: want *[]byte, got %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: want *[]byte, got %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

type result struct {
	Mode            string  `json:"mode"`
	Calls           int64   `json:"calls"`
	Errors          int64   `json:"errors"`
	PerCallUsMedian float64 `json:"per_call_us_median"`
	PerCallUsMean   float64 `json:"per_call_us_mean"`
	P99Us           float64 `json:"p99_us"`
	CallsPerS       float64 `json:"calls_per_s"`
	ElapsedS        float64 `json:"elapsed_s"`
	FirstError      string  `json:"first_error,omitempty"`
}

func main() {
	addr := flag.String("addr", "", "unix socket path (with or without unix://)")
	n := flag.Int("n", 10000, "sequential calls (used when -c is 1)")
	c := flag.Int("c", 1, "calls in flight; >1 runs for -d")
	d := flag.Duration("d", 3*time.Second, "duration of the concurrent run")
	warmup := flag.Int("warmup", 200, "untimed calls before measuring")
	method := flag.String("method", "/containerd.services.version.v1.Version/Version", "full method name")
	ns := flag.String("namespace", "", "containerd-namespace metadata (empty: none)")
	flag.Parse()
	if *addr == "" {
		fmt.Fprintln(os.Stderr, "rpcbench: -addr is required")
		os.Exit(2)
	}
	path := strings.TrimPrefix(*addr, "unix://")

	dialCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(dialCtx, "localhost",
		grpc.WithInsecure(),
		grpc.WithBlock(),
		grpc.WithAuthority("localhost"),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", path)
		}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rpcbench: dial:", err)
		os.Exit(1)
	}
	defer conn.Close()

	ctx := context.Background()
	if *ns != "" {
		ctx = metadataCtx(ctx, *ns)
	}
	call := func() error {
		req := []byte{}
		var resp []byte
		return conn.Invoke(ctx, *method, &req, &resp)
	}

	for i := 0; i < *warmup; i++ {
		if err := call(); err != nil {
			fmt.Fprintln(os.Stderr, "rpcbench: warm-up call failed:", err)
			os.Exit(1)
		}
	}

	var res result
	if *c <= 1 {
		res = sequential(call, *n)
	} else {
		res = concurrent(call, *c, *d)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Errors > 0 {
		os.Exit(1)
	}
}

func sequential(call func() error, n int) result {
	lat := make([]time.Duration, 0, n)
	var errs int64
	var firstErr string
	start := time.Now()
	for i := 0; i < n; i++ {
		t := time.Now()
		err := call()
		lat = append(lat, time.Since(t))
		if err != nil {
			if errs == 0 {
				firstErr = err.Error()
			}
			errs++
		}
	}
	elapsed := time.Since(start)
	r := summarize(lat)
	r.Mode = "sequential"
	r.Calls = int64(n)
	r.Errors = errs
	r.FirstError = firstErr
	r.ElapsedS = elapsed.Seconds()
	r.CallsPerS = float64(n) / elapsed.Seconds()
	return r
}

func concurrent(call func() error, c int, d time.Duration) result {
	var calls, errs int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	lats := make([][]time.Duration, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				t := time.Now()
				err := call()
				lats[w] = append(lats[w], time.Since(t))
				atomic.AddInt64(&calls, 1)
				if err != nil {
					if atomic.AddInt64(&errs, 1) == 1 {
						firstErr.Store(err.Error())
					}
				}
			}
		}(w)
	}
	time.Sleep(d)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	r := summarize(all)
	r.Mode = fmt.Sprintf("concurrent-%d", c)
	r.Calls = calls
	r.Errors = errs
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	r.ElapsedS = elapsed.Seconds()
	r.CallsPerS = float64(calls) / elapsed.Seconds()
	return r
}

func summarize(lat []time.Duration) result {
	var r result
	if len(lat) == 0 {
		return r
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	r.PerCallUsMedian = us(lat[len(lat)/2])
	r.PerCallUsMean = us(sum) / float64(len(lat))
	idx := int(float64(len(lat))*0.99) - 1
	if idx < 0 {
		idx = 0
	}
	r.P99Us = us(lat[idx])
	return r
}

func metadataCtx(ctx context.Context, ns string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "containerd-namespace", ns)
}
