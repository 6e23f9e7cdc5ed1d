// Moved to scripts/lib/torch-writer.mjs (the demo uses it at run time); kept for existing imports.
export * from '../../scripts/lib/torch-writer.mjs';
