/**
 * Runs the VramManager behaviour suite against every backend available here: `simulated` always,
 * `cuda` too when a GPU and libcuda are present.
 */
import { backendsUnderTest, registerBehaviourSuite } from './behaviour-suite.js';

for (const b of await backendsUnderTest()) registerBehaviourSuite(b);
