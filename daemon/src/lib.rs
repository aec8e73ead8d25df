//! twofoldd: sessions, factors, storage and authorization.
