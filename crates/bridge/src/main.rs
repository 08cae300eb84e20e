//! `encoder-bridge`: the daemon and its operator commands.
fn main() {}
