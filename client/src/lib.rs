//! hongyan native client (under construction).
