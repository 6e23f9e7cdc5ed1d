// imagebind-llm public API.
export { ImagebindError } from './errors';
export { addonPath, addonCandidates, loadAddonFrom, binaryTarget } from './binding';
export { versions, backends, systemInfo, setVerbose, installationInfo } from './system';
export type { InstallationInfo, BackendInfo, DeviceInfo, NativeVersions } from './system';
export { inspectGguf, writeGguf } from './gguf';
export type { GgufInfo, GgufTensorInfo, GgufWriteSpec, GgufMetaEntry, GgufTensorSpec, GgufValue } from './gguf';
export { findFfmpeg, probeFfmpeg } from './ffmpeg';
export type { FfmpegInfo, FfmpegSource, FindFfmpegOptions } from './ffmpeg';
export { openTorchCheckpoint, TorchCheckpoint, torchDtypeSize } from './torch';
export type { TorchTensorInfo, TorchDtype, TorchValue } from './torch';
export { decodeAudio, probeVideo, decodeVideoClips, uniformIndices, type MediaInput, type MediaOptions, type Fraction, type DecodedAudio, type VideoMeta, type VideoFrame, type VideoClip, type DecodedVideo, type VideoClipOptions } from './media';
export { convertImagebind } from './convert/imagebind';
export type { ConvertImagebindOptions, ConvertResult, EncoderType, ImagebindConfig } from './convert/imagebind';
export { ImageBindEncoder, loadEncoder, cosineSimilarity, similarityMatrix, zeroShot } from './encoder';
export type { EmbedInput, EmbedOptions, Embedding, EncoderInfo, EncoderLoadOptions, InputKind } from './encoder';
export { convertCache, readFaissHeader, type ConvertCacheOptions, type ConvertCacheResult, type CacheType, type CacheMetric, type FaissIndexHeader } from './convert/cache';
