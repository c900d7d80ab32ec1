/** A worker thread that runs agent.ts commands sent as messages, answering with messages. */
import { parentPort } from 'worker_threads';
import { run } from './agent';

parentPort!.on('message', (command) => {
  void run(command).then((answer) => parentPort!.postMessage(answer));
});
