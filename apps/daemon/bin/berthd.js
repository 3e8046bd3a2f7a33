#!/usr/bin/env node
import "../dist/bin/berthd.js";
