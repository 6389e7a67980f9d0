//! kd commands of the I/O manager.
