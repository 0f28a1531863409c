package browsertest

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// run runs the browser once with args after the common flags and returns
// its standard output. Virtual time lets the page's scripts run (timers
// and fetches) for up to 5 s of page time before the browser dumps or
// shoots, and fast-forwards while the page is idle.
func (b *Browser) run(args ...string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--hide-scrollbars", "--user-data-dir=" + b.t.TempDir(),
		"--window-size=" + strconv.Itoa(b.Width) + "," + strconv.Itoa(b.Height), "--virtual-time-budget=5000"}
	cmd := exec.CommandContext(ctx, b.bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.t.Fatalf("browsertest: chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
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
