"""What tests and benchmarks share: tiny random models, fault-injecting HTTP servers, chromium,
screenshot checks."""
