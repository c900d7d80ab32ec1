/** A child process that runs agent.ts commands: JSON lines on stdin, answers as `a <json>` lines on stdout. */
import * as fs from 'fs';
import { run } from './agent';

function emit(line: string): void {
  const buf = Buffer.from(line + '\n');
  for (let done = 0; done < buf.length;) {
    try {
      done += fs.writeSync(1, buf, done);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
    }
  }
}

let partial = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  const lines = (partial + chunk).split('\n');
  partial = lines.pop()!;
  for (const line of lines) {
    if (line === '') continue;
    const command = JSON.parse(line);
    void run(command).then((answer) => {
      emit(`a ${JSON.stringify(answer)}`);
      if (command.op === 'exit') process.exit(0);
    });
  }
});
process.stdin.on('end', () => process.exit(0));
emit('ready');
