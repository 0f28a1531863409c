// Package browsertest loads pages in headless Chromium for tests: the
// page's DOM once its scripts ran and its screenshot (Browser.Load), and a
// measure of how blank an image is (Paint).
//
// New finds the browser. Without one the test skips, except in CI (the
// CI environment variable set), where .ci/run installs Debian's chromium
// and fonts-liberation and a missing browser fails the test, so CI always
// runs the browser tests rather than skipping them.
package browsertest
