package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Browser is a headless Chromium for one test.
type Browser struct {
	t   testing.TB
	bin string
	// Width and Height are the window's size in pixels, and so the
	// screenshot's. New sets 1200x800.
	Width, Height int
}

// New finds a headless-capable Chromium (chromium, chromium-browser or
// google-chrome on PATH). Without one it skips t, or fails it when the
// CI environment variable is set.
func New(t testing.TB) *Browser {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return &Browser{t: t, bin: p, Width: 1200, Height: 800}
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("browsertest: chromium is not installed, and CI is set: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("browsertest: chromium is not installed (apt-get install chromium): skipping the headless browser test")
	return nil
}

// Attempts and their time limit: a headless Chromium under virtual time
// now and then stalls and never writes its output (seen once in a loaded
// full test run; others report the same of virtual time budgets), so a
// stalled run is killed and tried once more rather than failing the test.
const (
	attempts       = 2
	attemptTimeout = 40 * time.Second
)

// run runs the browser with args after the common flags and returns its
// standard output. Virtual time lets the page's scripts run (timers and
// fetches) for up to 5 s of page time before the browser dumps or shoots;
// it fast-forwards while the page is idle and waits for pending fetches.
func (b *Browser) run(args ...string) []byte {
	b.t.Helper()
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--window-size=" + strconv.Itoa(b.Width) + "," + strconv.Itoa(b.Height), "--virtual-time-budget=5000"}
	for attempt := 1; ; attempt++ {
		out, stderr, err := b.runOnce(append(append(base, "--user-data-dir="+b.t.TempDir()), args...))
		if err == nil {
			return out
		}
		if attempt < attempts && errors.Is(err, context.DeadlineExceeded) {
			b.t.Logf("browsertest: chromium stalled for %v; trying once more", attemptTimeout)
			continue
		}
		b.t.Fatalf("browsertest: chromium %v: %v\n%s", args, err, stderr)
	}
}

// runOnce runs the browser in its own process group, and kills the group
// after attemptTimeout, so no renderer outlives it. Its stderr comes
// without the D-Bus complaints of a machine without a session bus.
func (b *Browser) runOnce(args []string) (stdout []byte, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	var kept []string
	for _, line := range strings.Split(errs.String(), "\n") {
		if !strings.Contains(line, "dbus") {
			kept = append(kept, line)
		}
	}
	return out.Bytes(), strings.Join(kept, "\n"), err
}

// Page is what Load saw of a page once its scripts ran.
type Page struct {
	// DOM is the page's DOM, serialized: the state a test checks (the
	// data attributes a page sets, say).
	DOM string
	// Screenshot is the window's content, Browser.Width by Height.
	Screenshot image.Image
	// ScreenshotFile is the PNG file it was decoded from.
	ScreenshotFile string
}

// Load loads url once and returns its DOM and its screenshot, both of the
// same moment (one browser run does both). The PNG is kept at file when
// file is not "" (for a person to look at), and in the test's temporary
// directory otherwise.
func (b *Browser) Load(url, file string) Page {
	b.t.Helper()
	if file == "" {
		file = filepath.Join(b.t.TempDir(), "screenshot.png")
	}
	os.Remove(file) // so a browser that writes none cannot pass off an old one
	dom := b.run("--dump-dom", "--screenshot="+file, url)
	f, err := os.Open(file)
	if err != nil {
		b.t.Fatalf("browsertest: chromium wrote no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		b.t.Fatalf("browsertest: screenshot %s: %v", file, err)
	}
	return Page{DOM: string(dom), Screenshot: img, ScreenshotFile: file}
}

// Paint counts, in the rectangle r of img, the distinct colours and the
// pixels that are ink: neither near-white nor one of the background
// colours given (as 0xRRGGBB). A blank page has a handful of colours and
// no ink.
func Paint(img image.Image, r image.Rectangle, background ...uint32) (colours, inked int) {
	seen := map[uint32]bool{}
	bg := map[uint32]bool{}
	for _, c := range background {
		bg[c] = true
	}
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := RGB(img, x, y)
			seen[c] = true
			white := c>>16 > 250 && c>>8&0xff > 250 && c&0xff > 250
			if !white && !bg[c] {
				inked++
			}
		}
	}
	return len(seen), inked
}

// RGB is the colour of img at (x, y) as 0xRRGGBB.
func RGB(img image.Image, x, y int) uint32 {
	r, g, b, _ := img.At(x, y).RGBA()
	return r>>8<<16 | g>>8<<8 | b>>8
}
