//! Drains the outbox of security notifications (placeholder; filled below).
