//! hongyan H5 client (placeholder until the H5 issue).
