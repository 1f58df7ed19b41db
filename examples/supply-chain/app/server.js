// The example application; its dependency is what the registry's scan judges.
const mqtt = require("mqtt-packet");
console.log("parser ready", typeof mqtt.parser);
