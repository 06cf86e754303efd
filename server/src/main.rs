//! The Myna server binary (filled in by the server issue).

fn main() {}
