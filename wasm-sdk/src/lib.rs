//! The Myna browser SDK (filled in by the SDK issue).
