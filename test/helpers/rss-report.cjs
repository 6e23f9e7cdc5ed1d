// Preloaded into a CLI process by the hostile-input test (node --require): at exit, writes the
// process's peak resident memory (bytes) to the file IBL_RSS_OUT names.
const fs = require('node:fs');
process.on('exit', () => {
  if (process.env.IBL_RSS_OUT) fs.writeFileSync(process.env.IBL_RSS_OUT, String(process.resourceUsage().maxRSS * 1024));
});
