//! encoder-protocol: every byte that goes to a card and every byte that comes back.
//!
//! Sans-IO: no threads, no sockets, no files.
