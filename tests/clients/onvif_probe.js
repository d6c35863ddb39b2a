// What UniFi Protect's embedded client does to find and adopt ONVIF cameras: a WS-Discovery
// probe with the npm `onvif` package, then, per device found, a connection to the XAddr it
// announced and GetDeviceInformation. Prints one JSON document on stdout.
// Usage: node onvif_probe.js USER PASSWORD [TIMEOUT_MS]
'use strict';
const onvif = require('onvif');

const [user, password, timeout] = process.argv.slice(2);
const devices = [];
const errors = [];

onvif.Discovery.on('error', (err) => errors.push(String(err)));
onvif.Discovery.probe({ timeout: Number(timeout || 3000), resolve: false }, (err, found) => {
  if (err) errors.push(String(err));
  const pending = found.map((data) => new Promise((resolve) => {
    const match = data.probeMatches.probeMatch;
    const xaddrs = match.XAddrs.split(' ');
    const url = new URL(xaddrs[0]);
    const device = { endpoint: match.endpointReference.address, xaddrs, scopes: match.scopes };
    devices.push(device);
    const cam = new onvif.Cam({
      hostname: url.hostname, port: Number(url.port || 80), path: url.pathname,
      username: user, password: password, timeout: 5000,
    }, (connectError) => {
      if (connectError) { device.error = String(connectError); resolve(); return; }
      cam.getDeviceInformation((infoError, info) => {
        if (infoError) device.error = String(infoError); else device.info = info;
        resolve();
      });
    });
  }));
  Promise.all(pending).then(() => {
    process.stdout.write(JSON.stringify({ devices, errors }) + '\n');
    process.exit(0);
  });
});
