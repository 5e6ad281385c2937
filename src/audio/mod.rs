//! Audio front end: decoding, resampling to 16 kHz mono, the mel spectrogram, and
//! signal-processing lip-sync.
