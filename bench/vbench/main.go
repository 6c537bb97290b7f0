// vbench: a redis-benchmark style load generator for Velocity's V-Proto.
//
//	vbench -h 127.0.0.1 -p 2005 -c 50 -n 200000 -P 16 -d 64 -r 100000 -t set,get,incr --insecure
//	vbench -p 2005 --tls --ca ca.pem --token-file token -t get --json out.json
//	vbench --proto resp -p 6379 -t set,get   # same client against redis-server
//
// Every reply is validated (magic, CRC, opcode, body); server error replies
// are counted. Exit status: 0 ok, 1 usage/setup, 2 server error replies,
// 3 protocol errors, 4 connection errors (dropped connections, timeouts),
// 5 setup failed (connect, TLS handshake or HELLO refused).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const version = "0.1.0"

type config struct {
	host, port           string
	conns                int
	requests             int64
	pipeline             int
	valueSize            int
	tests                []testKind
	keyspace             uint64
	useTLS, insecure     bool
	caFile, tokenFile    string
	serverName           string
	skipVerify           bool
	proto                string
	duration             time.Duration
	timeout              time.Duration
	jsonOut              string
	quiet                bool
	noHello, allowErrors bool
	stale                bool
	seed                 uint64
	label                string
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("vbench", flag.ContinueOnError)
	fs.StringVar(&c.host, "h", "127.0.0.1", "server host")
	fs.StringVar(&c.port, "p", "2005", "server port")
	fs.IntVar(&c.conns, "c", 50, "parallel connections")
	fs.Int64Var(&c.requests, "n", 100000, "total requests per test")
	fs.IntVar(&c.pipeline, "P", 1, "pipeline depth (requests in flight per connection)")
	fs.IntVar(&c.valueSize, "d", 3, "SET value size in bytes")
	tests := fs.String("t", "set,get,incr", "comma-separated tests: set,get,incr (run in this order)")
	fs.Uint64Var(&c.keyspace, "r", 0, "random keys in [0,r) (0: one fixed key, like redis-benchmark without -r)")
	fs.BoolVar(&c.useTLS, "tls", false, "TLS 1.3 (the server's default mode)")
	fs.BoolVar(&c.insecure, "insecure", false, "plaintext (server runs --insecure); the default unless --tls/--ca")
	fs.StringVar(&c.caFile, "ca", "", "PEM CA bundle that signed the server certificate (implies --tls)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the auth token sent in HELLO")
	fs.StringVar(&c.serverName, "sni", "", "TLS server name to verify (default: -h)")
	fs.BoolVar(&c.skipVerify, "tls-skip-verify", false, "do not verify the server certificate")
	fs.StringVar(&c.proto, "proto", "vproto", "wire protocol: vproto or resp (redis-server, for cross-checks)")
	fs.DurationVar(&c.duration, "duration", 60*time.Second, "time cap per test (stops early, reports what completed)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-read/connect timeout")
	fs.StringVar(&c.jsonOut, "json", "", "write JSON results to this file ('-' for stdout; human text then goes to stderr)")
	fs.BoolVar(&c.quiet, "q", false, "quiet: one line per test")
	fs.BoolVar(&c.noHello, "no-hello", false, "skip HELLO (only valid against --insecure servers)")
	fs.BoolVar(&c.allowErrors, "allow-errors", false, "exit 0 even if the server answered with error replies")
	fs.BoolVar(&c.stale, "stale-ok", false, "set the STALE_OK consistency flag on requests")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed (0: from the clock)")
	fs.StringVar(&c.label, "label", "", "free-text label copied into the JSON")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.caFile != "" {
		c.useTLS = true
	}
	if c.useTLS && c.insecure {
		return nil, errors.New("--tls and --insecure are exclusive")
	}
	if c.conns < 1 || c.pipeline < 1 || c.requests < 1 || c.valueSize < 0 {
		return nil, errors.New("-c, -P, -n must be >= 1 and -d >= 0")
	}
	if c.proto != "vproto" && c.proto != "resp" {
		return nil, fmt.Errorf("unknown --proto %q", c.proto)
	}
	for _, t := range strings.Split(*tests, ",") {
		k, ok := testNames[strings.ToLower(strings.TrimSpace(t))]
		if !ok {
			return nil, fmt.Errorf("unknown test %q (want set, get, incr)", t)
		}
		c.tests = append(c.tests, k)
	}
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	return c, nil
}

// ---- results ----------------------------------------------------------------

type latencySummary struct {
	Min  float64 `json:"min"`
	Avg  float64 `json:"avg"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

type testResult struct {
	Test           string         `json:"test"`
	Requests       int64          `json:"requests"`
	Completed      int64          `json:"completed"`
	OK             int64          `json:"ok"`
	ErrorReplies   int64          `json:"error_replies"`
	ProtocolErrors int64          `json:"protocol_errors"`
	ConnErrors     int64          `json:"connection_errors"`
	FirstError     string         `json:"first_error,omitempty"`
	ElapsedS       float64        `json:"elapsed_s"`
	OpsPerSec      float64        `json:"ops_per_sec"`
	TimeCapped     bool           `json:"time_capped"`
	LatencyMs      latencySummary `json:"latency_ms"`
	GetHits        int64          `json:"get_hits,omitempty"`
	GetMisses      int64          `json:"get_misses,omitempty"`
	GetWrongLen    int64          `json:"get_wrong_length,omitempty"`
	SetNotApplied  int64          `json:"set_not_applied,omitempty"`
	BytesRead      int64          `json:"bytes_read,omitempty"`
}

type report struct {
	Tool    string         `json:"tool"`
	Version string         `json:"version"`
	Label   string         `json:"label,omitempty"`
	Target  map[string]any `json:"target"`
	Server  map[string]any `json:"server,omitempty"`
	Config  map[string]any `json:"config"`
	Tests   []testResult   `json:"tests"`
}

// percentile on sorted nanosecond samples (nearest rank), in milliseconds.
func percentile(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return float64(sorted[rank]) / 1e6
}

func summarize(lat []int64) latencySummary {
	if len(lat) == 0 {
		return latencySummary{}
	}
	slices.Sort(lat)
	var sum float64
	for _, v := range lat {
		sum += float64(v)
	}
	return latencySummary{
		Min: float64(lat[0]) / 1e6, Avg: sum / float64(len(lat)) / 1e6,
		P50: percentile(lat, 50), P95: percentile(lat, 95), P99: percentile(lat, 99),
		P999: percentile(lat, 99.9), Max: float64(lat[len(lat)-1]) / 1e6,
	}
}

// ---- connections ------------------------------------------------------------

type dialer struct {
	cfg    *config
	tlsCfg *tls.Config
	token  string
}

func newDialer(cfg *config) (*dialer, error) {
	d := &dialer{cfg: cfg}
	if cfg.tokenFile != "" {
		b, err := os.ReadFile(cfg.tokenFile)
		if err != nil {
			return nil, err
		}
		d.token = strings.TrimSpace(string(b))
	}
	if cfg.useTLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: cfg.serverName,
			InsecureSkipVerify: cfg.skipVerify} //nolint:gosec // opt-in flag for self-signed test servers
		if tc.ServerName == "" {
			tc.ServerName = cfg.host
		}
		if cfg.caFile != "" {
			pem, err := os.ReadFile(cfg.caFile)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificates in %s", cfg.caFile)
			}
			tc.RootCAs = pool
		}
		d.tlsCfg = tc
	}
	return d, nil
}

func (d *dialer) dial(ctx context.Context) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.cfg.timeout}
	addr := net.JoinHostPort(d.cfg.host, d.cfg.port)
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	if d.tlsCfg != nil {
		tc := tls.Client(conn, d.tlsCfg)
		hctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
			conn.Close()
			return nil, fmt.Errorf("negotiated TLS version %#x, want 1.3", v)
		}
		return tc, nil
	}
	return conn, nil
}

func (d *dialer) newCodec(t testKind) codec {
	cc := codecConfig{test: t, valueSize: d.cfg.valueSize, token: d.token, clientName: "vbench",
		noHello: d.cfg.noHello}
	if d.cfg.stale {
		cc.flags = 1
	}
	if d.cfg.proto == "resp" {
		return newRespCodec(cc)
	}
	return newVprotoCodec(cc)
}

// countingReader counts bytes for the report.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type worker struct {
	conn  net.Conn
	codec codec
	cr    *countingReader
	rng   *rand.Rand
	lat   []int64
	st    respStats
	err   error
}

// ---- the load loop ----------------------------------------------------------

func runTest(cfg *config, d *dialer, t testKind, seedOffset uint64, serverInfo *map[string]any) (testResult, error) {
	ctx := context.Background()
	workers := make([]*worker, cfg.conns)
	var wg sync.WaitGroup
	var dialErr atomic.Value
	for i := range workers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			conn, err := d.dial(ctx)
			if err != nil {
				dialErr.CompareAndSwap(nil, err)
				return
			}
			w := &worker{conn: conn, codec: d.newCodec(t), cr: &countingReader{r: conn},
				rng: rand.New(rand.NewPCG(cfg.seed+seedOffset, uint64(i)))}
			_ = conn.SetDeadline(time.Now().Add(cfg.timeout))
			info, err := w.codec.handshake(conn, w.cr)
			if err != nil {
				conn.Close()
				dialErr.CompareAndSwap(nil, err)
				return
			}
			if i == 0 && info != nil {
				*serverInfo = info
			}
			workers[i] = w
		}(i)
	}
	wg.Wait()
	if e := dialErr.Load(); e != nil {
		for _, w := range workers {
			if w != nil {
				w.conn.Close()
			}
		}
		return testResult{}, e.(error)
	}

	perConn := int(cfg.requests/int64(cfg.conns)) + cfg.pipeline
	var issued atomic.Int64
	claim := func() int {
		for {
			cur := issued.Load()
			if cur >= cfg.requests {
				return 0
			}
			k := min(int64(cfg.pipeline), cfg.requests-cur)
			if issued.CompareAndSwap(cur, cur+k) {
				return int(k)
			}
		}
	}
	start := time.Now()
	deadline := start.Add(cfg.duration)
	var capped atomic.Bool
	for _, w := range workers {
		w.lat = make([]int64, 0, perConn)
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			defer w.conn.Close()
			buf := make([]byte, 0, 4096)
			for {
				if time.Now().After(deadline) {
					capped.Store(true)
					return
				}
				k := claim()
				if k == 0 {
					return
				}
				buf = buf[:0]
				for j := 0; j < k; j++ {
					var n uint64
					if cfg.keyspace > 0 {
						n = w.rng.Uint64N(cfg.keyspace)
					}
					buf = w.codec.appendRequest(buf, n)
				}
				_ = w.conn.SetDeadline(time.Now().Add(cfg.timeout))
				t0 := time.Now()
				if _, err := w.conn.Write(buf); err != nil {
					w.err = err
					return
				}
				for j := 0; j < k; j++ {
					if err := w.codec.readResponse(&w.st); err != nil {
						w.err = err
						return
					}
					w.lat = append(w.lat, int64(time.Since(t0)))
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := testResult{Test: t.String(), Requests: cfg.requests, ElapsedS: elapsed.Seconds(), TimeCapped: capped.Load()}
	total := 0
	for _, w := range workers {
		total += len(w.lat)
	}
	all := make([]int64, 0, total)
	for _, w := range workers {
		all = append(all, w.lat...)
		res.OK += w.st.ok
		res.ErrorReplies += w.st.errors
		res.GetHits += w.st.getHits
		res.GetMisses += w.st.getMisses
		res.GetWrongLen += w.st.getWrongLen
		res.SetNotApplied += w.st.setNotApplied
		res.BytesRead += w.cr.n
		if res.FirstError == "" && w.st.firstError != "" {
			res.FirstError = w.st.firstError
		}
		if w.err != nil {
			if errors.Is(w.err, ErrProtocol) {
				res.ProtocolErrors++
			} else {
				res.ConnErrors++
			}
			if res.FirstError == "" || errors.Is(w.err, ErrProtocol) {
				res.FirstError = w.err.Error()
			}
		}
	}
	res.Completed = int64(len(all))
	res.OpsPerSec = float64(res.Completed) / elapsed.Seconds()
	res.LatencyMs = summarize(all)
	return res, nil
}

func printResult(out io.Writer, cfg *config, r testResult) {
	l := r.LatencyMs
	if cfg.quiet {
		fmt.Fprintf(out, "%s: %.2f requests per second, p50=%.3f msec p99=%.3f p99.9=%.3f\n",
			r.Test, r.OpsPerSec, l.P50, l.P99, l.P999)
		return
	}
	fmt.Fprintf(out, "====== %s ======\n", r.Test)
	fmt.Fprintf(out, "  %d requests completed in %.2f seconds%s\n", r.Completed, r.ElapsedS,
		map[bool]string{true: " (time cap reached)", false: ""}[r.TimeCapped])
	fmt.Fprintf(out, "  %d parallel clients, %d bytes payload, pipeline %d, keyspace %d, %s\n",
		cfg.conns, cfg.valueSize, cfg.pipeline, cfg.keyspace, transportName(cfg))
	fmt.Fprintf(out, "  throughput: %.2f requests per second\n", r.OpsPerSec)
	fmt.Fprintf(out, "  latency (msec):     avg      min      p50      p95      p99    p99.9      max\n")
	fmt.Fprintf(out, "                 %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f\n",
		l.Avg, l.Min, l.P50, l.P95, l.P99, l.P999, l.Max)
	if r.Test == "GET" {
		fmt.Fprintf(out, "  hits %d, misses %d", r.GetHits, r.GetMisses)
		if r.GetWrongLen > 0 {
			fmt.Fprintf(out, ", %d values of unexpected length", r.GetWrongLen)
		}
		fmt.Fprintln(out)
	}
	if r.SetNotApplied > 0 {
		fmt.Fprintf(out, "  %d SETs not applied\n", r.SetNotApplied)
	}
	if r.ErrorReplies+r.ProtocolErrors+r.ConnErrors > 0 {
		fmt.Fprintf(out, "  ERRORS: %d error replies, %d protocol errors, %d connection errors; first: %s\n",
			r.ErrorReplies, r.ProtocolErrors, r.ConnErrors, r.FirstError)
	}
	fmt.Fprintln(out)
}

func transportName(cfg *config) string {
	if cfg.proto == "resp" {
		return "RESP plaintext"
	}
	if cfg.useTLS {
		return "V-Proto over TLS 1.3"
	}
	return "V-Proto plaintext"
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "vbench:", err)
		return 1
	}
	human := io.Writer(os.Stdout)
	if cfg.jsonOut == "-" {
		human = os.Stderr
	}
	d, err := newDialer(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vbench:", err)
		return 1
	}
	rep := report{Tool: "vbench", Version: version, Label: cfg.label,
		Target: map[string]any{"host": cfg.host, "port": cfg.port, "proto": cfg.proto, "tls": cfg.useTLS},
		Config: map[string]any{"connections": cfg.conns, "requests": cfg.requests, "pipeline": cfg.pipeline,
			"value_size": cfg.valueSize, "keyspace": cfg.keyspace, "duration_cap_s": cfg.duration.Seconds(),
			"gomaxprocs": runtime.GOMAXPROCS(0), "seed": strconv.FormatUint(cfg.seed, 10),
			"latency": "per request: from the write of its pipelined batch to the decode of its reply"}}
	exit := 0
	for i, t := range cfg.tests {
		var info map[string]any
		res, err := runTest(cfg, d, t, uint64(i)*7919, &info)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vbench: %s: setup failed: %v\n", t, err)
			if errors.Is(err, ErrProtocol) {
				exit = max(exit, 3)
			} else {
				exit = max(exit, 5)
			}
			break
		}
		if info != nil && rep.Server == nil {
			rep.Server = info
		}
		printResult(human, cfg, res)
		rep.Tests = append(rep.Tests, res)
		switch {
		case res.ProtocolErrors > 0:
			exit = max(exit, 3)
		case res.ConnErrors > 0:
			exit = max(exit, 4)
		case res.ErrorReplies > 0 && !cfg.allowErrors:
			exit = max(exit, 2)
		}
	}
	if cfg.jsonOut != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		data = append(data, '\n')
		if cfg.jsonOut == "-" {
			os.Stdout.Write(data) //nolint:errcheck
		} else if err := os.WriteFile(cfg.jsonOut, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "vbench:", err)
			exit = max(exit, 1)
		}
	}
	return exit
}
