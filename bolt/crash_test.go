package bolt

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keygate/keygate/credentials"
)

// helperEnv selects what TestHelperProcess does in a re-executed test
// binary; helperPath is the store it works on.
const (
	helperEnv  = "KEYGATE_BOLT_HELPER"
	helperPath = "KEYGATE_BOLT_PATH"
	crashKeys  = 100_000
)

// crashSnapshot is the full state of revision rev in the crash test: one
// tenant, one client and crashKeys keys whose digests depend on rev.
func crashSnapshot(rev uint64) *credentials.Changes {
	ch := &credentials.Changes{
		Replace: true,
		Tenants: []credentials.Tenant{tenant("crash")},
		Clients: []credentials.Client{client("cl_crash", "crash")},
		APIKeys: make([]credentials.APIKey, crashKeys),
	}
	for i := range ch.APIKeys {
		ch.APIKeys[i] = credentials.APIKey{ID: "ak_" + strconv.Itoa(i), ClientID: "cl_crash", KeySHA256: crashDigest(rev, i)}
	}
	return ch
}

func crashDigest(rev uint64, i int) string {
	return digest("crash-" + strconv.FormatUint(rev, 10) + "-" + strconv.Itoa(i))
}

// TestHelperProcess is not a test: it is the child process of
// TestCrashDuringSync and TestDiskFull.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "crash":
		crashChild()
	case "diskfull":
		diskFullChild()
	default:
		t.Skip("only runs as a child process")
	}
	os.Exit(0)
}

// crashChild applies a new 100,000-key snapshot after another until it
// is killed, printing "applying N" before and "acked N" after each Apply.
func crashChild() {
	s, err := Open(os.Getenv(helperPath), Options{FlushInterval: -1})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for {
		st, _ := s.Status(ctx)
		ch := crashSnapshot(st.Revision + 1)
		fmt.Println("applying", st.Revision+1)
		res, err := s.Apply(ctx, ch, credentials.ApplyOptions{Actor: "crash"})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(2)
		}
		fmt.Println("acked", res.Revision)
	}
}

// TestCrashDuringSync kills (SIGKILL) a process applying 100,000-key
// snapshots at pseudo-random points (fault injection from a fixed seed)
// and checks that the store then holds exactly one revision's key set and
// every revision the child acknowledged.
func TestCrashDuringSync(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := dbPath(t)
	rng := rand.New(rand.NewPCG(2, 9))
	var acked uint64
	// calib is how long one Apply took in the child (round 0 lets the
	// first one finish); kill points are drawn from [0, 1.3*calib) after an
	// "applying" line, so they fall inside and just after an Apply however
	// fast this machine (or -race) is.
	var calib time.Duration
	rounds := 3
	if raceEnabled {
		// Each 100,000-key Apply takes many seconds under -race; one
		// kill point keeps the package under a minute. Without -race
		// all three run.
		rounds = 1
	}
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"=crash", helperPath+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var (
			lines    []string
			applying int
			started  time.Time
			delay    time.Duration = -1
		)
		for sc.Scan() {
			line := sc.Text()
			lines = append(lines, line)
			if strings.HasPrefix(line, "error") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child: %s", line)
			}
			if n, ok := strings.CutPrefix(line, "acked "); ok {
				v, _ := strconv.ParseUint(n, 10, 64)
				acked = max(acked, v)
				if d := time.Since(started); calib == 0 || d < calib {
					calib = d
				}
			}
			if !strings.HasPrefix(line, "applying") {
				continue
			}
			applying++
			started = time.Now()
			if delay < 0 && (round > 0 || applying == 2) {
				delay = time.Duration(rng.Int64N(int64(calib) * 13 / 10))
				time.AfterFunc(delay, func() { cmd.Process.Kill() })
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child was not killed: %v (output %q)", err, lines)
		}

		s, err := Open(path, Options{FlushInterval: -1})
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		st, _ := s.Status(ctx)
		t.Logf("round %d: one apply takes %s; killed %s after %q; store at revision %d",
			round, calib.Round(time.Millisecond), delay.Round(time.Millisecond), lines, st.Revision)
		if st.Revision < acked {
			t.Fatalf("round %d: revision %d is older than the acknowledged %d", round, st.Revision, acked)
		}
		checkCrashState(t, s, st.Revision)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkCrashState checks that s holds exactly the key set of revision rev.
func checkCrashState(t *testing.T, s *Store, rev uint64) {
	t.Helper()
	snap, err := s.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range snap.Clients {
		for _, k := range *c.APIKeys {
			n++
			i, _ := strconv.Atoi(strings.TrimPrefix(k.ID, "ak_"))
			if k.KeySHA256 != crashDigest(rev, i) {
				t.Fatalf("revision %d holds key %s of another revision", rev, k.ID)
			}
		}
	}
	want := crashKeys
	if rev == 0 {
		want = 0
	}
	if n != want || s.Index().Len() != want {
		t.Fatalf("revision %d holds %d keys (%d indexed), want %d", rev, n, s.Index().Len(), want)
	}
	if rev > 0 && lookup(s.Index(), "crash-"+strconv.FormatUint(rev, 10)+"-99999") == nil {
		t.Fatalf("revision %d: its last key is not in the index", rev)
	}
}

// diskFullChild opens the store, limits the file size (RLIMIT_FSIZE, with
// SIGXFSZ ignored, so writes past it fail with EFBIG like a full disk),
// tries to apply a 100,000-key snapshot and reports what it saw as JSON.
func diskFullChild() {
	report := map[string]any{}
	defer func() { json.NewEncoder(os.Stdout).Encode(report) }()
	path := os.Getenv(helperPath)
	s, err := Open(path, Options{FlushInterval: -1})
	if err != nil {
		report["open"] = err.Error()
		return
	}
	fi, _ := os.Stat(path)
	signal.Ignore(syscall.SIGXFSZ)
	var old syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old)
	lim := old
	lim.Cur = uint64(fi.Size())
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		report["setrlimit"] = err.Error()
		return
	}
	full := crashSnapshot(2)
	full.APIKeys = full.APIKeys[:20_000]
	res, err := s.Apply(ctx, full, credentials.ApplyOptions{})
	report["code"] = credentials.ErrorCode(err)
	report["error"] = fmt.Sprint(err)
	report["result_revision"] = res.Revision
	report["index_revision"] = s.Index().Revision
	report["old_key_found"] = lookup(s.Index(), "diskfull-old-key") != nil
	report["new_key_found"] = s.Index().Key(ptr(credentials.HashKey("crash-2-0"))) != nil
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	// With room again, a small Apply works on the same open store.
	res, err = s.Apply(ctx, &credentials.Changes{APIKeys: []credentials.APIKey{apiKey("ak_new", "cl_crash", "diskfull-new-key")}}, credentials.ApplyOptions{})
	report["retry_revision"] = res.Revision
	report["retry_error"] = fmt.Sprint(err)
	report["close"] = fmt.Sprint(s.Close())
}

func ptr[T any](v T) *T { return &v }

// TestDiskFull fails a 20,000-key sync for lack of space (in a child
// process whose file size is limited) and checks that the sync fails
// with unavailable, the old revision is still served, and the store is
// intact afterwards.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := dbPath(t)
	s := open(t, path, Options{})
	mustApply(t, s, &credentials.Changes{
		Tenants: []credentials.Tenant{tenant("crash")},
		Clients: []credentials.Client{client("cl_crash", "crash")},
		APIKeys: []credentials.APIKey{apiKey("ak_old", "cl_crash", "diskfull-old-key")},
	})
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=diskfull", helperPath+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	var r map[string]any
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	t.Logf("child: %v", r)
	if r["code"] != credentials.EUnavailable || r["result_revision"] != 1.0 || r["index_revision"] != 1.0 ||
		r["old_key_found"] != true || r["new_key_found"] != false {
		t.Fatalf("sync on a full disk: %v", r)
	}
	if r["retry_revision"] != 2.0 || r["close"] != "<nil>" {
		t.Fatalf("retry with room: %v", r)
	}
	s = open(t, path, Options{})
	if st, _ := s.Status(ctx); st.Revision != 2 || st.Counts.APIKeys != 2 || lookup(s.Index(), "diskfull-old-key") == nil || lookup(s.Index(), "diskfull-new-key") == nil {
		t.Fatalf("after reopen: %+v", st)
	}
}
