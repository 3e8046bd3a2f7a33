#!/usr/bin/env node
import "../dist/bin/berth.js";
