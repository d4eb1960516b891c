//! Shared bench bodies (filled below).
