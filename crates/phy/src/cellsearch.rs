//! (PHY-A) cellsearch — to be written.
