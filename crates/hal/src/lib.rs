//! encoder-hal: drives real card encoders.
