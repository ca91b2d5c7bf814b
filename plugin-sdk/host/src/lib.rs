//! Host side of the kplugfs plugin ABI: wasmtime engine, built-in policies and the block-cache core shared by the mount and the simulator.
