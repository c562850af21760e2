"""Browser tests of the portal: headless Debian Chromium against a served worker."""
