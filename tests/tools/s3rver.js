// Starts @20minutes/s3rver (installed by scripts/setup into <repo>/.peers), whose package ships no bin script.
require(require('path').join(__dirname, '../../.peers/node_modules/@20minutes/s3rver/lib/cli.js')).parseAsync(process.argv);
