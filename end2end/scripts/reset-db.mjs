// Empties the end-to-end databases (MySQL and MongoDB) before a journey run, so the
// server starts from the demo seed only. Reads MYSQL_URL, MONGODB_URI, MONGODB_DATABASE.
import { MongoClient } from 'mongodb';
import mysql from 'mysql2/promise';

const mysqlUrl = new URL(process.env.MYSQL_URL);
const database = mysqlUrl.pathname.replace(/^\//, '');
if (!/^portal_e2e\w*$/.test(database) || !/^portal_e2e\w*$/.test(process.env.MONGODB_DATABASE ?? '')) {
  throw new Error(`refusing to reset non-e2e databases (${database}, ${process.env.MONGODB_DATABASE})`);
}
mysqlUrl.pathname = '/';
const conn = await mysql.createConnection(mysqlUrl.toString());
await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
await conn.query(`CREATE DATABASE \`${database}\``);
await conn.end();

const client = new MongoClient(process.env.MONGODB_URI, { serverSelectionTimeoutMS: 5000 });
await client.connect();
await client.db(process.env.MONGODB_DATABASE).dropDatabase();
await client.close();
console.log(`reset ${database} in MySQL and MongoDB`);
