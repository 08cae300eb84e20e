//! encoder-sim: virtual hardware for tests and the demo.
