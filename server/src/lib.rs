//! hongyan server (under construction).
