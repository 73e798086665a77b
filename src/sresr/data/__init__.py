"""Package data: the Set5 benchmark images (HR) bundled for offline evaluation."""
