#!/usr/bin/env node
// imagebind-llm command line: one file per command in cli/, registered here.
import { main } from './cli/main';

void main(process.argv);
