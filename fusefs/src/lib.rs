//! kplugfs library
